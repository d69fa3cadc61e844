# API keys: every status/reason row of the authentication part, roles,
# variables and the audit log, attack inputs.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use JSON::PP;
use MLGuard::Test qw(sha256_hex_of random_key);

my $t = MLGuard::Test->new;
my %key = map { $_ => random_key() } qw(alice bob carol);
my $plain = sha256_hex_of('dave-is-not-hashed');   # 64 hex chars stored as if a hash
$t->write_file('keys.txt', <<"EOT");
# id    sha256                                  roles
alice   @{[ sha256_hex_of($key{alice}) ]}  predict,admin
bob     @{[ sha256_hex_of($key{bob}) ]}    viewer
carol   @{[ sha256_hex_of($key{carol}) ]}
dave    $plain predict
EOT
$t->start_echo;
$t->start_nginx(
    http => q{
        log_format mlg_audit escape=json '{"time":"$time_iso8601","client":"$remote_addr",'
            '"principal":"$ml_guard_principal","method":"$ml_guard_auth_method",'
            '"roles":"$ml_guard_roles","decision":"$ml_guard_decision",'
            '"reason":"$ml_guard_reason","status":$status,"request_time":$request_time}';
    },
    server => q{
        access_log %%DIR%%/logs/audit.log mlg_audit;
        proxy_set_header X-Principal $ml_guard_principal;
        proxy_set_header X-Auth-Method $ml_guard_auth_method;
        proxy_set_header X-Roles $ml_guard_roles;
        proxy_set_header X-Decision $ml_guard_decision;

        location /predict {
            ml_guard on;
            ml_guard_api_keys %%DIR%%/keys.txt;
            ml_guard_roles predict;
            proxy_pass http://%%ECHO%%;
        }
        location /any {
            ml_guard on;
            ml_guard_api_keys %%DIR%%/keys.txt;
            proxy_pass http://%%ECHO%%;
        }
        location /custom-header {
            ml_guard on;
            ml_guard_api_keys %%DIR%%/keys.txt;
            ml_guard_api_key_header X-Model-Key;
            proxy_pass http://%%ECHO%%;
        }
        location /open {
            ml_guard off;
            ml_guard_api_keys %%DIR%%/keys.txt;
            proxy_pass http://%%ECHO%%;
        }
        location /anon {
            ml_guard on;
            ml_guard_auth none;
            proxy_pass http://%%ECHO%%;
        }
    });

sub problem_ok {
    my ($res, $status, $reason, $name) = @_;
    subtest $name => sub {
        is $res->{status}, $status, "status $status";
        like $res->{headers}{'content-type'} // '', qr{^application/problem\+json}, 'problem+json';
        my $j = $res->{json} || {};
        is $j->{reason}, $reason, "reason $reason";
        is $j->{status}, $status, 'status in body';
        ok length($j->{title} // ''), 'title';
        ok length($j->{detail} // ''), 'detail';
        like $j->{type} // '', qr/\Q$reason\E$/, 'type names the reason';
        is $res->{headers}{'cache-control'}, 'no-store', 'not cacheable';
    };
}

# no credentials
my $r = $t->request(POST => '/predict', body => '{"input":[1,2,3,4]}');
problem_ok($r, 401, 'missing_credentials', 'no credentials');
like $r->{headers}{'www-authenticate'} // '', qr/^ApiKey realm="ml-guard", header="X-API-Key"$/,
    '401 carries WWW-Authenticate naming the header';

# unknown key, and the key is never echoed
my $guess = random_key();
$r = $t->request(POST => '/predict', headers => {'X-API-Key' => $guess}, body => '{}');
problem_ok($r, 401, 'invalid_api_key', 'unknown key');
unlike $r->{content}, qr/\Q$guess\E/, 'refused key not echoed';
ok $r->{headers}{'www-authenticate'}, 'WWW-Authenticate on invalid key';

# empty key header
$r = $t->request(POST => '/predict', headers => {'X-API-Key' => ''}, body => '{}');
problem_ok($r, 401, 'invalid_api_key', 'empty key header');

# valid key with the role: reaches the upstream with identity headers and the body unchanged
my $body = '{"input":[5.1,3.5,1.4,0.2]}';
$r = $t->request(POST => '/predict', headers => {'X-API-Key' => $key{alice}}, body => $body);
is $r->{status}, 200, 'alice allowed';
is $r->{content}, $body, 'body reaches upstream unchanged';
is $r->{headers}{'x-echo-h-x-principal'}, 'alice', '$ml_guard_principal';
is $r->{headers}{'x-echo-h-x-auth-method'}, 'api_key', '$ml_guard_auth_method';
is $r->{headers}{'x-echo-h-x-roles'}, 'predict,admin', '$ml_guard_roles';
is $r->{headers}{'x-echo-h-x-decision'}, 'allow', '$ml_guard_decision';

# header name is case-insensitive
$r = $t->request(POST => '/predict', headers => {'x-api-KEY' => $key{alice}}, body => $body);
is $r->{status}, 200, 'header name matched without case';

# wrong role
$r = $t->request(POST => '/predict', headers => {'X-API-Key' => $key{bob}}, body => $body);
problem_ok($r, 403, 'role_denied', 'key with the wrong role');
ok !$r->{headers}{'www-authenticate'}, 'no challenge on 403';

# no roles at all
$r = $t->request(POST => '/predict', headers => {'X-API-Key' => $key{carol}}, body => $body);
problem_ok($r, 403, 'role_denied', 'key without roles');

# no ml_guard_roles: any authenticated key
$r = $t->request(GET => '/any', headers => {'X-API-Key' => $key{carol}});
is $r->{status}, 200, 'any authenticated caller where no role is required';
is $r->{headers}{'x-echo-h-x-roles'}, undef, 'empty roles variable is not sent';

# a key file entry holding a plaintext value instead of a hash authenticates nobody
$r = $t->request(POST => '/predict', headers => {'X-API-Key' => $plain}, body => $body);
problem_ok($r, 401, 'invalid_api_key', 'plaintext entry does not authenticate');

# presenting a stored digest is not a key either
$r = $t->request(POST => '/predict', headers => {'X-API-Key' => sha256_hex_of($key{alice})}, body => $body);
problem_ok($r, 401, 'invalid_api_key', 'the digest itself is refused');

# two copies of the header are ambiguous
$r = $t->raw_request("POST /predict HTTP/1.1\r\nHost: x\r\nX-API-Key: $key{alice}\r\n"
    . "X-API-Key: $guess\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}");
is $r->{status}, 401, 'duplicate key headers refused';
is $r->{json}{reason}, 'invalid_api_key', 'duplicate headers: invalid_api_key';

# attack inputs: 100 random 40-character keys are all refused, the right key still works
my $refused = 0;
for (1 .. 100) {
    my $res = $t->request(GET => '/any', headers => {'X-API-Key' => random_key(40)});
    $refused++ if $res->{status} == 401 && ($res->{json}{reason} // '') eq 'invalid_api_key';
}
is $refused, 100, '100 random keys refused';
# (leading/trailing blanks are not part of an HTTP field value, so they are
# not near misses)
for my $evil ("$key{alice}x", "x$key{alice}", substr($key{alice}, 0, -1), lc $key{alice},
              "$key{alice},$key{alice}", "' OR 1=1 --", "%00$key{alice}", 'A' x 4000,
              "\xe9t\xe9\xff", "$key{alice}\x00") {
    my $res = $t->raw_request("GET /any HTTP/1.1\r\nHost: x\r\nX-API-Key: $evil\r\n"
                              . "Connection: close\r\n\r\n");
    my $shown = join '', map { /[[:print:]]/ ? $_ : sprintf('\\x%02x', ord $_) } split //, substr($evil, 0, 12);
    like $res->{status}, qr/^40[01]$/, "near-miss or hostile key refused: $shown";
}
$r = $t->request(GET => '/any', headers => {'X-API-Key' => $key{alice}});
is $r->{status}, 200, 'the right key still works after the attack';

# configurable header; the default header no longer counts there
$r = $t->request(GET => '/custom-header', headers => {'X-Model-Key' => $key{bob}});
is $r->{status}, 200, 'ml_guard_api_key_header';
$r = $t->request(GET => '/custom-header', headers => {'X-API-Key' => $key{bob}});
problem_ok($r, 401, 'missing_credentials', 'default header ignored when renamed');
like $r->{headers}{'www-authenticate'}, qr/header="X-Model-Key"/, 'challenge names the custom header';

# ml_guard off: untouched
$r = $t->request(POST => '/open', body => $body);
is $r->{status}, 200, 'ml_guard off location is untouched';
is $r->{content}, $body, 'body passes';
is $r->{headers}{'x-echo-h-x-decision'}, undef, 'no decision where ml_guard is off';

# ml_guard_auth none: no credentials needed, still decided
$r = $t->request(GET => '/anon');
is $r->{status}, 200, 'ml_guard_auth none allows anonymous callers';
is $r->{headers}{'x-echo-h-x-decision'}, 'allow', 'and records the decision';

# HEAD denial: headers only
$r = $t->request(HEAD => '/predict');
is $r->{status}, 401, 'HEAD denied';
is $r->{content} // '', '', 'HEAD has no body';

# the audit log: decisions and reasons, never a key
$t->stop;
my $audit = $t->read_file('logs/audit.log');
my @lines = map { JSON::PP->new->decode($_) } grep { length } split /\n/, $audit;
ok @lines > 100, 'audit log lines are valid JSON';
ok((grep { $_->{principal} eq 'alice' && $_->{decision} eq 'allow' && $_->{method} eq 'api_key' } @lines),
   'audit log records an allowed call with principal');
ok((grep { $_->{reason} eq 'role_denied' && $_->{principal} eq 'bob' && $_->{status} == 403 } @lines),
   'audit log records a denial with its reason');
ok((grep { $_->{reason} eq 'invalid_api_key' && $_->{decision} eq 'deny' } @lines),
   'audit log records an invalid key');
for my $name (sort keys %key) {
    unlike $audit, qr/\Q$key{$name}\E/, "audit log never holds $name\'s key";
}
# (nginx itself, at level info, quotes the start of a header line it
# rejects as malformed, e.g. one holding a NUL byte; our own lines never
# quote a key)
my @ours = grep { /ml_guard/ } split /\n/, $t->read_file('logs/error.log');
ok @ours, 'the module logs its decisions at level info';
ok !(grep { /\Q$key{alice}\E|\Q$guess\E/ } @ours), 'the module never logs a key';

done_testing;

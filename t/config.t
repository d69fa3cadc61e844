# Configuration errors are caught by `nginx -t`, with file and line.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use MLGuard::Test qw(sha256_hex_of);

my $t = MLGuard::Test->new;
my $h1 = sha256_hex_of('one');
my $h2 = sha256_hex_of('two');

sub conf_fails {
    my ($server, $want, $name, %opt) = @_;
    my ($ok, $out) = $t->nginx_test(server => $server, http => $opt{http} // '');
    ok !$ok, "$name: nginx -t fails";
    like $out, $want, "$name: message" or diag $out;
}

sub conf_ok {
    my ($server, $name, %opt) = @_;
    my ($ok, $out) = $t->nginx_test(server => $server, http => $opt{http} // '');
    ok $ok, "$name: nginx -t passes" or diag $out;
    return $out;
}

my $keys = $t->write_file('keys.txt', "# good\nalice $h1 predict\nbob $h2\n");
conf_ok("location / { ml_guard on; ml_guard_api_keys $keys; ml_guard_roles predict admin; "
        . "ml_guard_max_body 64k; ml_guard_api_key_header X-Key; ml_guard_auth api_key; }",
        'a complete valid location');

my $f = $t->write_file('bad-hex.txt', "alice $h1\n# c\nbob " . ('z' x 64) . "\n");
conf_fails("location / { ml_guard_api_keys $f; }",
           qr/bad-hex\.txt:3: digest of key "bob" is not lowercase hex.*in .*nginx\.conf:\d+/,
           'bad hex names key file:line and the nginx.conf line');

$f = $t->write_file('short.txt', "alice abc123\n");
conf_fails("location / { ml_guard_api_keys $f; }", qr/short\.txt:1: digest of key "alice" must be 64/,
           'wrong digest length');

$f = $t->write_file('plain.txt', "alice my-secret-key-in-plaintext\n");
conf_fails("location / { ml_guard_api_keys $f; }", qr/plain\.txt:1: .*never the key itself/,
           'a plaintext key in place of the digest');

$f = $t->write_file('dup-id.txt', "alice $h1\nalice $h2\n");
conf_fails("location / { ml_guard_api_keys $f; }", qr/dup-id\.txt:2: duplicate key id "alice" \(first on line 1\)/,
           'duplicate id');

$f = $t->write_file('dup-hash.txt', "alice $h1\n\nbob $h1\n");
conf_fails("location / { ml_guard_api_keys $f; }", qr/dup-hash\.txt:3: duplicate digest/, 'duplicate hash');

$f = $t->write_file('roles.txt', "alice $h1 a,,b\n");
conf_fails("location / { ml_guard_api_keys $f; }", qr/roles\.txt:1: empty role name/, 'empty role');

conf_fails("location / { ml_guard_api_keys %%DIR%%/missing.txt; }", qr/missing\.txt: cannot open file/,
           'missing key file');

conf_fails("location / { ml_guard_auth api_key password; }",
           qr/invalid authentication method "password".*nginx\.conf:\d+/, 'unknown auth method');
conf_fails("location / { ml_guard_auth none api_key; }", qr/"none" cannot be combined/, 'none with others');
conf_fails("location / { ml_guard_auth jwt jwt; }", qr/listed twice/, 'method listed twice');
conf_fails("location / { ml_guard maybe; }", qr/invalid value "maybe"/, 'ml_guard takes on|off');
conf_fails("location / { ml_guard_max_body lots; }", qr/"ml_guard_max_body" directive invalid value/,
           'bad size');
conf_fails("location / { ml_guard_api_key_header 'X Key'; }", qr/invalid header name/, 'bad header name');
conf_fails("location / { ml_guard_api_key_header Authorization; }", qr/cannot be "Authorization"/,
           'Authorization is reserved for bearer tokens');
conf_fails("location / { ml_guard_roles 'a,b'; }", qr/invalid role name "a,b"/, 'bad role name');
conf_fails("location / { ml_guard_roles a; ml_guard_roles b; }", qr/is duplicate/, 'duplicate ml_guard_roles');
conf_fails("location / { ml_guard_api_keys $keys; ml_guard_api_keys $keys; }", qr/is duplicate/,
           'duplicate key file');
conf_fails("location / { ml_guard_redis 127.0.0.1:6379; }", qr/not allowed here/, 'ml_guard_redis is http-only');

my $out = conf_ok("location / { ml_guard_api_keys " . $t->write_file('empty.txt', "# none yet\n") . "; }",
                  'an empty key file loads');
like $out, qr/holds no keys/, 'with a warning';


# A location where ml_guard is on must be able to authenticate: nginx -t
# fails (naming the location) when it has no method at all, or when
# ml_guard_auth accepts a method that is not configured there.  Only the
# effective settings of locations count: ml_guard on at http or server level
# with the keys in each location is a valid configuration.
my $secret = $t->write_file('hs.secret', 'x' x 64);

conf_fails('location /m { ml_guard on; }',
           qr/"ml_guard" is on in location "\/m" but no authentication method is configured there/,
           'ml_guard on without any method');
conf_fails("location /m { ml_guard on; ml_guard_auth jwt; ml_guard_api_keys $keys; }",
           qr/"ml_guard_auth" accepts jwt in location "\/m" but no ml_guard_jwt_key is set there/,
           'jwt accepted without a JWT key');
conf_fails("location /m { ml_guard on; ml_guard_auth api_key jwt; ml_guard_jwt_key $secret; }",
           qr/"ml_guard_auth" accepts api_key in location "\/m" but no ml_guard_api_keys is set there/,
           'api_key accepted without a key file');
conf_fails("location /m { ml_guard on; location /m/a { ml_guard_api_keys $keys; } }",
           qr/location "\/m" but no authentication method/,
           'an outer location serving requests itself needs a method too');
conf_fails("location /ok { ml_guard_api_keys $keys; } location /m { }",
           qr/location "\/m" but no authentication method/,
           'ml_guard on at http level: a location without keys fails', http => 'ml_guard on;');
conf_fails("location /m { ml_guard on; ml_guard_auth jwt; }",
           qr/accepts jwt in location "\/m"/, 'jwt key inherited nowhere', http => "ml_guard_api_keys $keys;");

conf_ok("location /m { ml_guard on; ml_guard_api_keys $keys; }", 'a key file');
conf_ok("location /m { ml_guard on; ml_guard_jwt_key $secret; }", 'a JWT key');
conf_ok("location /m { ml_guard on; ml_guard_auth none; }", 'ml_guard_auth none');
conf_ok("location /m { ml_guard on; ml_guard_auth mtls; }", 'mtls (the role map is optional)');
conf_ok("location /m { ml_guard on; ml_guard_auth api_key jwt; ml_guard_api_keys $keys; "
        . "ml_guard_jwt_key $secret; }", 'both methods configured');
conf_ok("location /a { ml_guard_api_keys $keys; } location /b { ml_guard_jwt_key $secret; } "
        . 'location /off { ml_guard off; }',
        'ml_guard on at http level, a method in every location that has it on', http => 'ml_guard on;');
conf_ok("ml_guard on; location /a { ml_guard_api_keys $keys; } location /off { ml_guard off; }",
        'ml_guard on at server level, keys in the location');
conf_ok("location /m { ml_guard on; ml_guard_auth jwt; }", 'keys inherited from http',
        http => "ml_guard_jwt_key $secret;");
conf_ok("location /m { ml_guard on; ml_guard_api_keys $keys; if (\$arg_x) { return 418; } "
        . 'limit_except GET { deny all; } }', 'if and limit_except inside a guarded location');
conf_ok("location /m { ml_guard on; ml_guard_api_keys $keys; location /m/in { } }",
        'a nested location inherits the keys');

# a server level with ml_guard on serves a request that matches no location
# with its own settings: without a method that is refused at request time
$t->start_echo;
$t->start_nginx(server => "ml_guard on; location /a { ml_guard_api_keys $keys; proxy_pass http://%%ECHO%%; }");
is $t->request(GET => '/a')->{status}, 401, 'the location with keys asks for a key';
is $t->request(GET => '/elsewhere')->{status}, 500, 'no location matches, no method at server level: 500';
like $t->read_file('logs/error.log'), qr/no authentication method is configured/, 'and says why in the error log';

$t->stop;
done_testing;

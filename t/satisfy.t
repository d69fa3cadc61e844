# ml-guard's decision is final in every `satisfy` mode.  Under `satisfy any`
# its 401/403 must not be one vote that an address in `allow` or a valid
# auth_basic user outvotes; its allow is not a vote either: the other access
# modules still decide among themselves as `satisfy` says.  An allow from
# ml-guard means every one of its steps ran (caps, schema, limits).
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use MLGuard::Test qw(sha256_hex_of random_key);
use MIME::Base64 qw(encode_base64);

my $t = MLGuard::Test->new;
my $key = random_key();
my $norole = random_key();
$t->write_file('keys.txt', 'svc ' . sha256_hex_of($key) . " predict\n"
                           . 'plain ' . sha256_hex_of($norole) . "\n");
$t->write_file('schema.json', '{"type":"object","required":["input"]}');
chomp(my $hash = `openssl passwd -apr1 s3cret`);
$t->write_file('htpasswd', "ops:$hash\n");
$t->start_echo;

# a budget of 3 requests per location (the valid-key requests below spend 3, the 4th is refused)
sub guard {
    my ($loc) = @_;
    return qq{ml_guard on; ml_guard_api_keys %%DIR%%/keys.txt; ml_guard_roles predict;
              ml_guard_max_body 1k; ml_guard_schema %%DIR%%/schema.json;
              ml_guard_rate_limit 1r/h burst=2 key=\$ml_guard_principal/$loc;
              proxy_pass http://%%ECHO%%;};
}
$t->start_nginx(server => qq{
    location /any-allowed   { satisfy any; allow 127.0.0.1; deny all; @{[ guard('aa') ]} }
    location /any-denied    { satisfy any; allow 192.0.2.1; deny all; @{[ guard('ad') ]} }
    location /all-allowed   { satisfy all; allow 127.0.0.1; deny all; @{[ guard('la') ]} }
    location /all-denied    { satisfy all; allow 192.0.2.1; deny all; @{[ guard('ld') ]} }
    location /any-basic     { satisfy any; auth_basic "ops"; auth_basic_user_file %%DIR%%/htpasswd;
                              ml_guard on; ml_guard_api_keys %%DIR%%/keys.txt; proxy_pass http://%%ECHO%%; }
    location /any-none      { satisfy any; allow 127.0.0.1; deny all;
                              ml_guard on; ml_guard_auth none; ml_guard_max_body 1k;
                              proxy_pass http://%%ECHO%%; }
});

my $json = { 'Content-Type' => 'application/json' };
sub post {
    my ($path, $body, %h) = @_;
    return $t->request(POST => $path, headers => { %$json, %h }, body => $body);
}
sub problem {
    my ($res, $status, $reason, $name) = @_;
    is $res->{status}, $status, "$name: $status";
    is $res->{json}{reason}, $reason, "$name: reason $reason" or diag $res->{content};
}

# --- satisfy any, an allowed address: ml-guard still decides ------------------
for my $loc ('/any-allowed', '/all-allowed') {
    problem(post("$loc/a", '{"input":1}'), 401, 'missing_credentials', "$loc: no key");
    problem(post("$loc/a", '{"input":1}', 'X-API-Key' => 'wrong'), 401, 'invalid_api_key',
            "$loc: wrong key");
    problem(post("$loc/a", '{"input":1}', 'X-API-Key' => $norole), 403, 'role_denied',
            "$loc: key without the role");
    problem(post("$loc/a", 'x' x 4096, 'Content-Type' => 'text/plain'), 401, 'missing_credentials',
            "$loc: no key, oversized non-JSON body");
    is_deeply [ map { post("$loc/b", '{"input":1}')->{status} } 1 .. 5 ], [ (401) x 5 ],
              "$loc: no key, past the rate limit: still 401";

    # an allow runs every later step of ml-guard
    is post("$loc/c", '{"input":1}', 'X-API-Key' => $key)->{status}, 200, "$loc: valid key: 200";
    problem(post("$loc/c", 'x' x 4096, 'X-API-Key' => $key), 413, 'body_too_large',
            "$loc: valid key, oversized body");
    problem(post("$loc/c", '{"nope":1}', 'X-API-Key' => $key), 422, 'schema_violation',
            "$loc: valid key, schema violation");
    problem(post("$loc/c", '{"input":1}', 'X-API-Key' => $key), 429, 'rate_limited',
            "$loc: valid key, past the rate limit");
}

# --- an address refused by allow/deny ------------------------------------------
for my $loc ('/any-denied', '/all-denied') {
    problem(post("$loc/a", '{"input":1}'), 401, 'missing_credentials', "$loc: no key: ml-guard's 401");
}
my $res = post('/any-denied/a', '{"input":1}', 'X-API-Key' => $key);
is $res->{status}, 403, 'satisfy any: valid key, no other module allows: 403 (allow/deny decides)';
$res = post('/all-denied/a', '{"input":1}', 'X-API-Key' => $key);
is $res->{status}, 403, 'satisfy all: valid key, address denied: 403';

# --- satisfy any with auth_basic ------------------------------------------------
my $basic = 'Basic ' . encode_base64('ops:s3cret', '');
my $badbasic = 'Basic ' . encode_base64('ops:wrong', '');
problem($t->request(GET => '/any-basic/x', headers => { Authorization => $basic }), 401,
        'missing_credentials', 'basic user valid, no key: ml-guard still refuses');
problem($t->request(GET => '/any-basic/x', headers => { Authorization => $basic, 'X-API-Key' => 'wrong' }),
        401, 'invalid_api_key', 'basic user valid, wrong key: refused');
is $t->request(GET => '/any-basic/x', headers => { Authorization => $basic, 'X-API-Key' => $key })->{status},
   200, 'basic user and key valid: 200';
is $t->request(GET => '/any-basic/x', headers => { Authorization => $badbasic, 'X-API-Key' => $key })->{status},
   401, 'key valid, basic user wrong, nothing else allows: 401 from auth_basic';

# --- ml_guard_auth none: the caps still hold -------------------------------------
problem($t->request(POST => '/any-none/x', body => 'x' x 4096), 413, 'body_too_large',
        'auth none under satisfy any: the body cap holds');
is $t->request(POST => '/any-none/x', body => 'small')->{status}, 200, 'auth none: small body passes';

$t->stop;
done_testing;

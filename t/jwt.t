# JWT bearer tokens through nginx: every algorithm, claims (exp, nbf,
# leeway, iss, aud), JWKS kid selection, roles (nested path, scope string),
# variables, API key + JWT at one location, the verified-token cache.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use MLGuard::Test qw(wait_for sha256_hex_of random_key);
use MLGuard::JWT;
use Time::HiRes qw(time);

my $t = MLGuard::Test->new;
my $k = MLGuard::JWT->new($t->dir);
my $dir = $t->dir;

# keys
my $secret = random_key(64);
$t->write_file('hs.secret', $secret);
$k->rsa('rsa1');
$k->rsa('rsa2');
$k->ec('ec256', 'P-256');
$k->ec('ec384', 'P-384');
$k->ec('ec521', 'P-521');
$t->write_file('jwks.json', $k->jwks_json(
    $k->jwk('rsa1', kid => 'a', alg => 'RS256', use => 'sig'),
    $k->jwk('rsa2', kid => 'b', alg => 'RS256', use => 'sig'),
    { kty => 'RSA', kid => 'enc-1', use => 'enc', alg => 'RSA-OAEP', n => 'AQAB', e => 'AQAB' },
));
# the same RSA key as a PKCS#1 "RSA PUBLIC KEY" and inside a certificate
system('openssl rsa -pubin -in ' . $k->pub_path('rsa1')
       . " -RSAPublicKey_out -out $dir/rsa1.pkcs1.pem 2>/dev/null") == 0 or die 'openssl rsa';
system("openssl req -x509 -new -key " . $k->priv_path('rsa1')
       . " -subj /CN=idp.test -days 2 -out $dir/rsa1.crt 2>/dev/null") == 0 or die 'openssl req';
my $api_key = random_key();
$t->write_file('api.keys', "svc-batch " . sha256_hex_of($api_key) . " predict\n");

my $echo = $t->start_echo;

my $vars = q{
        proxy_set_header X-Principal $ml_guard_principal;
        proxy_set_header X-Method $ml_guard_auth_method;
        proxy_set_header X-Roles $ml_guard_roles;
        proxy_set_header Authorization "";
        proxy_pass http://%%ECHO%%;
};
my %loc = (
    '/hs256'   => "ml_guard_jwt_key %%DIR%%/hs.secret;",
    '/hs384'   => "ml_guard_jwt_key %%DIR%%/hs.secret alg=HS384;",
    '/hs512'   => "ml_guard_jwt_key %%DIR%%/hs.secret alg=HS512;",
    '/rs256'   => "ml_guard_jwt_key %%DIR%%/rsa1.pub.pem;",
    '/rs384'   => "ml_guard_jwt_key %%DIR%%/rsa1.pub.pem alg=RS384;",
    '/rs512'   => "ml_guard_jwt_key %%DIR%%/rsa1.pub.pem alg=RS512;",
    '/es256'   => "ml_guard_jwt_key %%DIR%%/ec256.pub.pem;",
    '/es384'   => "ml_guard_jwt_key %%DIR%%/ec384.pub.pem;",
    '/es512'   => "ml_guard_jwt_key %%DIR%%/ec521.pub.pem;",
    '/pkcs1'   => "ml_guard_jwt_key %%DIR%%/rsa1.pkcs1.pem;",
    '/cert'    => "ml_guard_jwt_key %%DIR%%/rsa1.crt;",
    '/jwks'    => "ml_guard_jwt_key %%DIR%%/jwks.json;",
    '/claims'  => "ml_guard_jwt_key %%DIR%%/rsa1.pub.pem;
                   ml_guard_jwt_issuer https://idp.test/realms/ml;
                   ml_guard_jwt_audience ml-api;",
    '/leeway'  => "ml_guard_jwt_key %%DIR%%/hs.secret; ml_guard_jwt_leeway 10s;",
    '/nested'  => "ml_guard_jwt_key %%DIR%%/hs.secret;
                   ml_guard_jwt_roles_claim realm_access.roles; ml_guard_roles ml-user;",
    '/scope'   => "ml_guard_jwt_key %%DIR%%/hs.secret;
                   ml_guard_jwt_roles_claim scope; ml_guard_roles predict:write;",
    '/both'    => "ml_guard_auth api_key jwt; ml_guard_api_keys %%DIR%%/api.keys;
                   ml_guard_jwt_key %%DIR%%/hs.secret;",
    '/nocache' => "ml_guard_jwt_key %%DIR%%/rsa1.pub.pem; ml_guard_jwt_cache off;",
    '/noexp'   => "ml_guard_jwt_key %%DIR%%/rsa1.pub.pem; ml_guard_jwt_require_exp off;",
);
my $server = join '', map { "    location $_ { ml_guard on; $loc{$_} $vars }\n" } sort keys %loc;
$t->start_nginx(server => $server);

sub call {
    my ($path, $token, %h) = @_;
    my %headers = %h;
    $headers{Authorization} = "Bearer $token" if defined $token;
    return $t->request(GET => $path, headers => \%headers);
}

# status + reason in one test
sub check {
    my ($path, $token, $status, $reason, $name) = @_;
    my $res = call($path, $token);
    my $got = $res->{status} . ' ' . ($res->{json} ? $res->{json}{reason} // '' : '');
    my $want = $status . ' ' . ($reason // '');
    is $got, $want, $name or diag $res->{content};
    return $res;
}


# --- every algorithm ----------------------------------------------------------
for my $alg (qw(HS256 HS384 HS512)) {
    my $res = check('/' . lc $alg, $k->token(alg => $alg, secret => $secret), 200, undef, "$alg accepted");
    is $res->{headers}{'x-echo-h-x-principal'}, 'alice', "$alg: principal is sub";
    is $res->{headers}{'x-echo-h-x-method'}, 'jwt', "$alg: auth method jwt";
}
for my $alg (qw(RS256 RS384 RS512)) {
    check('/' . lc $alg, $k->token(alg => $alg, key => 'rsa1'), 200, undef, "$alg accepted");
}
my %ec = (ES256 => 'ec256', ES384 => 'ec384', ES512 => 'ec521');
for my $alg (sort keys %ec) {
    check('/' . lc $alg, $k->token(alg => $alg, key => $ec{$alg}), 200, undef, "$alg accepted");
}
check('/pkcs1', $k->token(alg => 'RS256', key => 'rsa1'), 200, undef, 'PKCS#1 RSA PUBLIC KEY file works');
check('/cert', $k->token(alg => 'RS256', key => 'rsa1'), 200, undef, 'X.509 certificate file works');
check('/hs384', $k->token(alg => 'HS256', secret => $secret), 401, 'invalid_token', 'HS256 at an HS384 location');
check('/rs256', $k->token(alg => 'RS256', key => 'rsa2'), 401, 'invalid_token', 'wrong RSA key');
check('/hs256', $k->token(alg => 'HS256', secret => random_key(64)), 401, 'invalid_token', 'wrong secret');

# --- the header -----------------------------------------------------------------
my $good = $k->token(alg => 'HS256', secret => $secret);
for my $scheme ('bearer', 'BEARER', 'BeArEr') {
    my $res = $t->request(GET => '/hs256', headers => { Authorization => "$scheme $good" });
    is $res->{status}, 200, "scheme \"$scheme\" accepted";
}
{
    my $res = $t->request(GET => '/hs256', headers => { Authorization => "Bearer    $good  " });
    is $res->{status}, 200, 'extra spaces around the token';
    $res = $t->request(GET => '/hs256', headers => { Authorization => "Basic $good" });
    is $res->{status}, 401, 'Basic scheme is not a bearer token';
    is $res->{json}{reason}, 'missing_credentials', 'Basic -> missing_credentials';
    $res = $t->request(GET => '/hs256', headers => { Authorization => "Bearer$good" });
    is $res->{json}{reason}, 'missing_credentials', 'no space after Bearer -> not a bearer token';
    $res = $t->request(GET => '/hs256');
    is $res->{status}, 401, 'no credentials -> 401';
    is $res->{json}{reason}, 'missing_credentials', 'missing_credentials';
    like $res->{headers}{'www-authenticate'}, qr/^Bearer realm="ml-guard"$/, 'WWW-Authenticate: Bearer';
    $res = call('/hs256', "$good" . 'x');
    like $res->{headers}{'www-authenticate'}, qr/Bearer realm="ml-guard", error="invalid_token"/,
        'WWW-Authenticate names invalid_token';
    like $res->{headers}{'content-type'}, qr{^application/problem\+json}, 'problem+json';
    is $res->{json}{status}, 401, 'problem status 401';
    ok $res->{json}{type} && $res->{json}{title} && $res->{json}{detail}, 'problem type, title, detail';
    unlike $res->{content}, qr/\Q$good\E|alice/, 'the token is not echoed';
}

# --- claims ---------------------------------------------------------------------
my %ok_claims = (iss => 'https://idp.test/realms/ml', aud => 'ml-api');
sub rs { $k->token(alg => 'RS256', key => 'rsa1', claims => { @_ }) }

check('/claims', rs(%ok_claims), 200, undef, 'iss and aud match');
my $claims_res = check('/claims', rs(%ok_claims, iss => 'https://evil.test/realms/ml'), 401, 'token_claims',
                       'wrong iss');
unlike $claims_res->{content}, qr/evil/, 'the wrong issuer is not echoed';
check('/claims', rs(%ok_claims, iss => undef), 401, 'token_claims', 'missing iss');
check('/claims', rs(%ok_claims, aud => 'other-api'), 401, 'token_claims', 'wrong aud');
check('/claims', rs(%ok_claims, aud => undef), 401, 'token_claims', 'missing aud');
check('/claims', rs(%ok_claims, aud => ['account', 'ml-api']), 200, undef, 'aud array containing it');
check('/claims', rs(%ok_claims, aud => ['account', 'billing']), 401, 'token_claims', 'aud array without it');
check('/claims', rs(%ok_claims, exp => int(time) - 60), 401, 'token_expired', 'expired before claims');
check('/rs256', rs(exp => int(time) - 1), 401, 'token_expired', 'expired');
check('/rs256', rs(exp => undef), 401, 'token_claims', 'exp missing (required)');
check('/noexp', rs(exp => undef), 200, undef, 'exp missing, ml_guard_jwt_require_exp off');
check('/noexp', rs(exp => int(time) - 1), 401, 'token_expired', 'exp still checked when present');
check('/noexp', rs(exp => 'tomorrow'), 401, 'token_claims', 'exp not a number');
check('/rs256', rs(nbf => int(time) + 60), 401, 'token_not_yet_valid', 'not yet valid');
check('/rs256', rs(nbf => int(time) - 1), 200, undef, 'nbf in the past');
check('/rs256', rs(sub => undef), 401, 'token_claims', 'sub missing');

# leeway 10s: a margin of 5 s either side of each edge keeps these exact
sub hs { $k->token(alg => 'HS256', secret => $secret, claims => { @_ }) }
check('/leeway', hs(exp => int(time) - 5), 200, undef, 'leeway: expired 5 s ago, leeway 10 s -> ok');
check('/leeway', hs(exp => int(time) - 15), 401, 'token_expired', 'leeway: expired 15 s ago -> expired');
check('/leeway', hs(nbf => int(time) + 5), 200, undef, 'leeway: nbf 5 s ahead -> ok');
check('/leeway', hs(nbf => int(time) + 15), 401, 'token_not_yet_valid', 'leeway: nbf 15 s ahead -> not yet valid');
check('/hs256', hs(exp => int(time) - 5), 401, 'token_expired', 'no leeway: expired 5 s ago -> expired');
check('/hs256', hs(nbf => int(time) + 5), 401, 'token_not_yet_valid', 'no leeway: nbf 5 s ahead');

# --- JWKS -----------------------------------------------------------------------
check('/jwks', $k->token(alg => 'RS256', key => 'rsa1', header => { kid => 'a' }), 200, undef, 'JWKS: kid a');
check('/jwks', $k->token(alg => 'RS256', key => 'rsa2', header => { kid => 'b' }), 200, undef, 'JWKS: kid b');
check('/jwks', $k->token(alg => 'RS256', key => 'rsa1', header => { kid => 'b' }), 401, 'invalid_token',
      'JWKS: signed by a, kid b');
check('/jwks', $k->token(alg => 'RS256', key => 'rsa1', header => { kid => 'nope' }), 401, 'invalid_token',
      'JWKS: unknown kid');
check('/jwks', $k->token(alg => 'RS256', key => 'rsa1'), 401, 'invalid_token', 'JWKS of two keys: no kid');
check('/jwks', $k->token(alg => 'RS256', key => 'rsa1', header => { kid => 'enc-1' }), 401, 'invalid_token',
      'JWKS: the encryption key is not used');

# --- roles ----------------------------------------------------------------------
{
    my $res = check('/nested', hs(realm_access => { roles => ['offline_access', 'ml-user'] }), 200, undef,
                    'nested roles: has ml-user');
    is $res->{headers}{'x-echo-h-x-roles'}, 'offline_access,ml-user', '$ml_guard_roles from realm_access.roles';
    check('/nested', hs(realm_access => { roles => ['offline_access'] }), 403, 'role_denied',
          'nested roles: lacks ml-user');
    check('/nested', hs(roles => ['ml-user']), 403, 'role_denied', 'top-level roles ignored when the path is nested');
    check('/nested', hs(), 403, 'role_denied', 'no roles at all');
    $res = check('/scope', hs(scope => 'openid predict:read predict:write'), 200, undef, 'scope string has the role');
    is $res->{headers}{'x-echo-h-x-roles'}, 'openid,predict:read,predict:write', 'scope split into roles';
    check('/scope', hs(scope => 'openid predict:read'), 403, 'role_denied', 'scope string lacks the role');
    check('/scope', hs(scope => 'predict:writer'), 403, 'role_denied', 'no prefix matching');
}

# --- API key and JWT at one location ---------------------------------------------
{
    my $res = $t->request(GET => '/both', headers => { 'X-API-Key' => $api_key });
    is $res->{status}, 200, 'both: API key accepted';
    is $res->{headers}{'x-echo-h-x-method'}, 'api_key', 'both: auth method api_key';
    is $res->{headers}{'x-echo-h-x-principal'}, 'svc-batch', 'both: key id as principal';
    $res = call('/both', hs(roles => ['predict']));
    is $res->{status}, 200, 'both: JWT accepted';
    is $res->{headers}{'x-echo-h-x-method'}, 'jwt', 'both: auth method jwt';
    is $res->{headers}{'x-echo-h-x-roles'}, 'predict', 'both: roles from the token';
    $res = call('/both', hs(), 'X-API-Key' => 'wrong-key');
    is $res->{json}{reason}, 'invalid_api_key', 'both: a wrong API key is refused next to a valid JWT';
    $res = call('/both', 'garbage', 'X-API-Key' => $api_key);
    is $res->{json}{reason}, 'invalid_token', 'both: a bad JWT is refused next to a valid API key';
    $res = call('/both', hs(roles => ['predict']), 'X-API-Key' => $api_key);
    is $res->{status}, 200, 'both: two valid credentials: 200';
    is $res->{headers}{'x-echo-h-x-principal'}, 'svc-batch', 'both: the API key names the principal';
    $res = call('/both', 'garbage');
    is $res->{json}{reason}, 'invalid_token', 'both: bad JWT alone -> invalid_token';
    $res = $t->request(GET => '/both');
    is $res->{json}{reason}, 'missing_credentials', 'both: nothing -> missing_credentials';
    my $ch = $res->{headers}{'www-authenticate'} // '';
    $ch = join ', ', @$ch if ref $ch;
    like $ch, qr/ApiKey/, 'both: ApiKey challenge';
    like $ch, qr/Bearer/, 'both: Bearer challenge';
}

# --- the verified-token cache ----------------------------------------------------
{
    # a cached token is still checked against each location's policy
    my $tok = rs();
    check('/rs256', $tok, 200, undef, 'cache: accepted at /rs256');
    check('/rs256', $tok, 200, undef, 'cache: accepted again');
    check('/claims', $tok, 401, 'token_claims', 'cache: same token, other location, its own policy');
    check('/nocache', $tok, 200, undef, 'cache off: accepted');

    # an entry never outlives exp
    my $exp = int(time) + 2;
    $tok = rs(exp => $exp);
    check('/rs256', $tok, 200, undef, 'cache: short-lived token accepted (and cached)');
    ok wait_for(sub { time >= $exp }, 5), 'clock passed exp';
    check('/rs256', $tok, 401, 'token_expired', 'cache: refused at exp');
}

$t->stop;
done_testing();

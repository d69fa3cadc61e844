# Denials after an internal redirect from a proxied location (the model
# server answers X-Accel-Redirect into a guarded location) are problem
# documents with their own reason: r->upstream is still set there, which must
# not make ml-guard treat its own 401 as an upstream response or relabel its
# 503 limiter_unavailable as upstream_unavailable.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use MLGuard::Test qw(sha256_hex_of random_key);

my $t = MLGuard::Test->new;
my $key = random_key();
$t->write_file('keys.txt', 'svc ' . sha256_hex_of($key) . " predict\n");
$t->start_echo;
$t->start_nginx(
    # Redis that never answers, limits fail closed: 503 limiter_unavailable
    http => 'ml_guard_redis unix:%%DIR%%/no-redis.sock fail=closed;',
    server => q{
    location /app/ { proxy_pass http://%%ECHO%%; }
    location /guarded/ {
        internal;
        ml_guard on; ml_guard_api_keys %%DIR%%/keys.txt; ml_guard_roles predict;
        proxy_set_header X-Echo-Accel "";
        proxy_pass http://%%ECHO%%;
    }
    location /limited/ {
        internal;
        ml_guard on; ml_guard_api_keys %%DIR%%/keys.txt;
        ml_guard_rate_limit 10r/s;
        proxy_set_header X-Echo-Accel "";
        proxy_pass http://%%ECHO%%;
    }
});

sub via_app {
    my ($to, %h) = @_;
    return $t->request(GET => '/app/x', headers => { 'X-Echo-Accel' => $to, %h });
}

my $res = via_app('/guarded/x', 'X-API-Key' => $key);
is $res->{status}, 200, 'valid key: the redirected request is allowed';
is $res->{headers}{'x-echo-uri'}, '/guarded/x', 'and reaches the upstream at the new URI';

$res = via_app('/guarded/x');
is $res->{status}, 401, 'no key after X-Accel-Redirect: 401';
like $res->{headers}{'content-type'}, qr{^application/problem\+json}, 'as a problem document';
is $res->{json}{reason}, 'missing_credentials', 'reason missing_credentials';
like $res->{headers}{'www-authenticate'} // '', qr/ApiKey/, 'with the challenge';

$res = via_app('/guarded/x', 'X-API-Key' => 'wrong');
is $res->{json}{reason}, 'invalid_api_key', 'wrong key: invalid_api_key';

$res = via_app('/limited/x', 'X-API-Key' => $key);
is $res->{status}, 503, 'limiter unavailable after X-Accel-Redirect: 503';
is $res->{json}{reason}, 'limiter_unavailable', 'reason limiter_unavailable, not upstream_unavailable';

$t->stop;
done_testing;

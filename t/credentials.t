# Every credential presented for an accepted method must be valid.  A wrong
# API key next to a valid JWT (or a bad token next to a valid key) is
# refused and counts toward ml_guard_auth_failures, so a valid credential
# cannot carry unthrottled guesses of another; a refusal never reaches the
# rate limit, so RateLimit-Remaining tells nothing about a guessed key.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use MLGuard::Test qw(sha256_hex_of random_key);
use MLGuard::JWT;

my $secret = random_key(64);
my $key = random_key();
my $other = random_key();
my ($t, $k);

# nginx with API keys and a JWT key in one location, and a lockout
sub start {
    my ($failures) = @_;
    $t = MLGuard::Test->new;
    $k = MLGuard::JWT->new($t->dir);
    $t->write_file('hs.secret', $secret);
    $t->write_file('api.keys', 'svc-a ' . sha256_hex_of($key) . " predict\n"
                               . 'svc-b ' . sha256_hex_of($other) . " predict\n");
    $t->start_echo;
    $t->start_nginx(server => qq{
        location / {
            ml_guard on;
            ml_guard_api_keys %%DIR%%/api.keys;
            ml_guard_jwt_key %%DIR%%/hs.secret;
            ml_guard_rate_limit 100r/m burst=50;
            ml_guard_auth_failures $failures ban=1h;
            proxy_set_header X-Principal \$ml_guard_principal;
            proxy_set_header X-Method \$ml_guard_auth_method;
            proxy_pass http://%%ECHO%%;
        }
    });
}

start('3r/m');
my $jwt = $k->token(alg => 'HS256', secret => $secret, claims => { sub => 'alice' });
sub get { $t->request(GET => '/m', headers => { @_ }) }
sub bearer { (Authorization => "Bearer $_[0]") }

my $res = get(bearer($jwt));
is $res->{status}, 200, 'a valid JWT alone: 200';
ok defined $res->{headers}{'ratelimit-remaining'}, 'allowed requests carry RateLimit-Remaining';

$res = get(bearer($jwt), 'X-API-Key' => $key);
is $res->{status}, 200, 'a valid JWT and a valid key: 200';
is $res->{headers}{'x-echo-h-x-principal'}, 'svc-a', 'the API key names the principal';
is $res->{headers}{'x-echo-h-x-method'}, 'api_key', 'auth method api_key';

$res = get(bearer($jwt), 'X-API-Key' => $other);
is $res->{headers}{'x-echo-h-x-principal'}, 'svc-b', 'another valid key: its own principal';

# guesses next to a valid JWT: refused, and indistinguishable from each other
my @guesses = map { get(bearer($jwt), 'X-API-Key' => 'guess-' . random_key(8)) } 1 .. 3;
is_deeply [ map { $_->{status} } @guesses ], [ 401, 401, 401 ], 'wrong keys next to a valid JWT: 401';
is_deeply [ map { $_->{json}{reason} } @guesses ], [ ('invalid_api_key') x 3 ], 'reason invalid_api_key';
ok !(grep { defined $_->{headers}{'ratelimit-remaining'} } @guesses),
   'no RateLimit-Remaining on a refused guess';

# the 4th failure bans (3 per minute tolerated), then even the valid JWT is locked out
is get(bearer($jwt), 'X-API-Key' => 'guess-' . random_key(8))->{status}, 401,
   'the 4th wrong key is answered 401 (and bans)';
$res = get(bearer($jwt));
is $res->{status}, 429, 'then the valid JWT alone gets 429';
is $res->{json}{reason}, 'locked_out', 'reason locked_out: the guesses counted as failures';

$t->stop;

# a bad token next to a valid key counts the same way
start('1r/m');
my $forged = $k->token(alg => 'HS256', secret => 'not-the-secret-' . random_key(32));
$res = get(bearer($forged), 'X-API-Key' => $key);
is $res->{status}, 401, 'a forged token next to a valid key: 401';
is $res->{json}{reason}, 'invalid_token', 'reason invalid_token';
is get(bearer($forged), 'X-API-Key' => $key)->{status}, 401, 'the 2nd failure bans';
is get('X-API-Key' => $key)->{json}{reason}, 'locked_out', 'then the valid key alone is locked out';
$t->stop;

done_testing;

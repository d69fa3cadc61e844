# The default key of ml_guard_rate_limit is the principal within its
# authentication method, and for JWTs within the issuer the location
# requires: the API key "svc-billing", a token with sub=svc-billing, and
# tokens with that subject from two issuers are four clients with four
# budgets.  The same method and issuer on two locations with equal limits
# share one budget.  In Redis and locally.
use strict;
use warnings;
use Test::More;
use lib 't/lib';
use MLGuard::Test qw(sha256_hex_of random_key);
use MLGuard::JWT;

my $key = random_key();
my $secret = random_key(64);

my $server = q{
    location /m {
        ml_guard on;
        ml_guard_api_keys %%DIR%%/keys.txt;
        ml_guard_jwt_key %%DIR%%/hs.secret;
        ml_guard_rate_limit 1r/m burst=1;
        proxy_pass http://%%ECHO%%;
    }
    ISSUERS
};

# the same JWT limit behind a required issuer: /iss-a and /iss-a2 share it
my %iss = ('iss-a' => 'https://a.example', 'iss-a2' => 'https://a.example',
           'iss-b' => 'https://b.example');
my $issuers = join '', map { qq{
    location /$_ {
        ml_guard on;
        ml_guard_jwt_key %%DIR%%/hs.secret;
        ml_guard_jwt_issuer $iss{$_};
        ml_guard_rate_limit 1r/m burst=1;
        proxy_pass http://%%ECHO%%;
    }} } sort keys %iss;
$server =~ s/ISSUERS/$issuers/;

for my $mode ('redis', 'local') {
    my $t = MLGuard::Test->new;
    $t->write_file('keys.txt', 'svc-billing ' . sha256_hex_of($key) . " predict\n");
    $t->write_file('hs.secret', $secret);
    my $jwt = MLGuard::JWT->new($t->dir);
    my $tok = sub {
        $jwt->token(alg => 'HS256', secret => $secret,
                    claims => { sub => 'svc-billing', @_ });
    };
    $t->start_echo;
    if ($mode eq 'redis') {
        $t->start_redis;
        $t->start_nginx(http => 'ml_guard_redis unix:%%REDIS_SOCKET%% fail=closed;',
                        server => $server);
    } else {
        $t->start_nginx(server => $server);
    }
    my $st = sub {
        my ($path, %h) = @_;
        return $t->request(GET => $path, headers => \%h)->{status};
    };

    is_deeply([ map { $st->('/m', 'X-API-Key' => $key) } 1 .. 3 ], [ 200, 200, 429 ],
              "$mode: API key svc-billing: 2, then limited");
    my $bearer = 'Bearer ' . $tok->();
    is_deeply([ map { $st->('/m', Authorization => $bearer) } 1 .. 3 ], [ 200, 200, 429 ],
              "$mode: a JWT with sub=svc-billing has its own budget");

    my $ta = 'Bearer ' . $tok->(iss => 'https://a.example');
    my $tb = 'Bearer ' . $tok->(iss => 'https://b.example');
    is_deeply([ map { $st->('/iss-a', Authorization => $ta) } 1 .. 2 ], [ 200, 200 ],
              "$mode: issuer a: its budget");
    is($st->('/iss-a2', Authorization => $ta), 429,
       "$mode: the same issuer and limit on another location: the same budget");
    is_deeply([ map { $st->('/iss-b', Authorization => $tb) } 1 .. 3 ], [ 200, 200, 429 ],
              "$mode: issuer b: a budget of its own");
    $t->stop;
}

done_testing();

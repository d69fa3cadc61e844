# ml_guard_auth_failures LIMIT ban=TIME: after N bad credentials from one
# address the address gets 429 locked_out for ban, whatever credentials it
# presents (a refused one is never answered 401); then it recovers.  In Redis, and locally without Redis.
use strict;
use warnings;
use Test::More;
use Time::HiRes qw(time);
use lib 't/lib';
use MLGuard::Test qw(wait_for sha256_hex_of random_key);

my $good = random_key();

sub scenario {
    my ($t, $label) = @_;
    my $get = sub { $t->request(GET => '/a', headers => { @_ }) };
    my $bad = sub { $get->('X-API-Key' => 'guess-' . random_key(8)) };

    is($get->('X-API-Key' => $good)->{status}, 200, "$label: good key allowed");
    is_deeply([ map { $get->('X-API-Key' => $good)->{status} } 1 .. 10 ], [ (200) x 10 ],
              "$label: successful requests are not failures");
    is_deeply([ map { $bad->()->{status} } 1 .. 3 ], [ 401, 401, 401 ], "$label: 3 failures tolerated");
    # the ban starts after the 4th request is sent, so it cannot end before
    # $t0 + 2 s however slow the machine (a lower bound, not a timing guess)
    my $t0 = time;
    my $fourth = $bad->();
    is($fourth->{status}, 401, "$label: the 4th failure is still answered 401 (and bans)");

    my $locked = $get->('X-API-Key' => $good);
    is($locked->{status}, 429, "$label: then even the good key gets 429");
    is($locked->{json}{reason}, 'locked_out', "$label: reason locked_out");
    ok($locked->{headers}{'retry-after'} >= 1 && $locked->{headers}{'retry-after'} <= 2,
       "$label: Retry-After within the ban ($locked->{headers}{'retry-after'})");
    is($bad->()->{status}, 429, "$label: a bad key gets 429, not 401");
    is($get->()->{status}, 429, "$label: no credentials: 429 as well");
    is($t->request(GET => '/open')->{status}, 200, "$label: locations without lockout unaffected");

    ok(wait_for(sub { $get->('X-API-Key' => $good)->{status} == 200 }, 30), "$label: recovered after the ban");
    my $took = time - $t0;
    ok($took >= 1.99, sprintf("$label: the ban lasted at least 2 s (%.2f s)", $took));
    is_deeply([ map { $bad->()->{status} } 1 .. 3 ], [ 401, 401, 401 ],
              "$label: failures are counted afresh after a ban");
    is($bad->()->{status}, 401, "$label: the 4th bans again");
    is($get->('X-API-Key' => $good)->{status}, 429, "$label: locked out again");
}

my $server = q{
    location /a {
        ml_guard on;
        ml_guard_api_keys %%DIR%%/keys.txt;
        ml_guard_auth_failures 3r/h ban=2s;
        proxy_pass http://%%ECHO%%;
    }
    location /open {
        ml_guard on; ml_guard_auth none;
        proxy_pass http://%%ECHO%%;
    }
};

{
    my $t = MLGuard::Test->new;
    $t->write_file('keys.txt', 'svc ' . sha256_hex_of($good) . " predict\n");
    $t->start_redis;
    $t->start_echo;
    $t->start_nginx(http => 'ml_guard_redis unix:%%REDIS_SOCKET%%;', server => $server);
    scenario($t, 'redis');
    my @k = split /\n/, $t->redis_cli('--scan', '--pattern', '*');
    ok(scalar(grep { /^mlg:\{[0-9a-f]{32}\}:ban$/ } @k) == 1, 'the ban lives in Redis as mlg:{hash}:ban');
    $t->stop;
}

{
    my $t = MLGuard::Test->new;
    $t->write_file('keys.txt', 'svc ' . sha256_hex_of($good) . " predict\n");
    $t->start_echo;
    $t->start_nginx(server => $server);
    scenario($t, 'local');
    $t->stop;
}

{
    # Redis configured but unreachable: fail=local falls back to the same
    # lockout in shared memory, fail=closed refuses
    my $t = MLGuard::Test->new;
    $t->write_file('keys.txt', 'svc ' . sha256_hex_of($good) . " predict\n");
    $t->start_echo;
    $t->start_nginx(http => 'ml_guard_redis unix:%%DIR%%/no-redis.sock fail=local;', server => $server);
    scenario($t, 'fallback');
    like($t->read_file('logs/error.log'), qr/unavailable: connect failed; limits fail local/,
         'fallback: the outage is logged');
    $t->stop_nginx;

    $t->start_nginx(http => 'ml_guard_redis unix:%%DIR%%/no-redis.sock fail=closed;', server => $server);
    my $r = $t->request(GET => '/a', headers => { 'X-API-Key' => $good });
    is($r->{status}, 503, 'fail=closed: lockout check unavailable, 503');
    is($r->{json}{reason}, 'limiter_unavailable', 'fail=closed: limiter_unavailable');
    is($t->request(GET => '/open')->{status}, 200, 'fail=closed: locations without lockout unaffected');
    $t->stop;
}

done_testing();

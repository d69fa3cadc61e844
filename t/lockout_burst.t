# The lockout holds at full concurrency: with ml_guard_auth_failures 5r/h (no refill during the test), a
# burst of 200 concurrent requests with distinct wrong keys from one address
# gets exactly 6 answered 401 (5 failures tolerated, the 6th counted and
# banning) and 194 answered 429 locked_out, with 2 workers through Redis as
# locally.  A refused credential's outcome is told only once the failure was
# counted; accepted credentials spend nothing and are not held back by the
# lockout while the address is not banned.
use strict;
use warnings;
use Test::More;
use lib 't/lib';
use MLGuard::Test qw(sha256_hex_of random_key);
use MLGuard::Parallel;

my $good = random_key();

my $server = q{
    location /a {
        ml_guard on;
        ml_guard_api_keys %%DIR%%/keys.txt;
        ml_guard_auth_failures 5r/h ban=10m;
        proxy_pass http://%%ECHO%%;
    }
};

sub burst {
    my ($t, @keys) = @_;
    my @res = MLGuard::Parallel::requests(
        [ map { { port => $t->port, path => '/a', headers => { 'X-API-Key' => $_ } } } @keys ],
        timeout => 60);
    my %n;
    for my $r (@res) {
        my $k = $r->{status} // 'none';
        $k .= " $1" if $r->{status} && $r->{status} == 429 && $r->{body} =~ /"reason"\s*:\s*"(\w+)"/;
        $n{$k}++;
    }
    return \%n;
}

sub scenario {
    my ($t, $label) = @_;

    # accepted credentials, concurrently: none is a failure, none held back
    my $n = burst($t, ($good) x 50);
    is_deeply($n, { 200 => 50 }, "$label: 50 concurrent good requests all 200")
        or diag explain $n;

    $n = burst($t, map { 'guess-' . random_key(12) } 1 .. 200);
    is_deeply($n, { 401 => 6, '429 locked_out' => 194 },
              "$label: 200 concurrent wrong keys: exactly 6 checked (401), 194 locked out")
        or diag explain $n;

    my $r = $t->request(GET => '/a', headers => { 'X-API-Key' => $good });
    is($r->{status}, 429, "$label: then the good key is locked out too");
}

for my $mode ('redis', 'local') {
    my $t = MLGuard::Test->new(workers => 2);
    $t->write_file('keys.txt', 'svc ' . sha256_hex_of($good) . " predict\n");
    $t->start_echo;
    if ($mode eq 'redis') {
        $t->start_redis;
        $t->start_nginx(http => 'ml_guard_redis unix:%%REDIS_SOCKET%% timeout=10s fail=closed;',
                        server => $server);
    } else {
        $t->start_nginx(server => $server);
    }
    scenario($t, $mode);
    $t->stop;
}

{
    # a good key within the budget works, and spends nothing of it: after
    # 4 failures and many good requests, 2 more failures are still answered
    # 401 (the 6th bans)
    my $t = MLGuard::Test->new(workers => 2);
    $t->write_file('keys.txt', 'svc ' . sha256_hex_of($good) . " predict\n");
    $t->start_echo;
    $t->start_redis;
    $t->start_nginx(http => 'ml_guard_redis unix:%%REDIS_SOCKET%% timeout=10s fail=closed;',
                    server => $server);
    my $n = burst($t, map { 'guess-' . random_key(12) } 1 .. 4);
    is_deeply($n, { 401 => 4 }, '4 concurrent failures: all 401') or diag explain $n;
    $n = burst($t, ($good) x 40);
    is_deeply($n, { 200 => 40 }, 'good key within the budget: 40 concurrent 200')
        or diag explain $n;
    $n = burst($t, map { 'guess-' . random_key(12) } 1 .. 20);
    is_deeply($n, { 401 => 2, '429 locked_out' => 18 },
              'the good requests spent nothing: 2 more failures checked, then locked out')
        or diag explain $n;
    $t->stop;
}

done_testing();

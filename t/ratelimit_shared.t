# Several gateways share one budget per client through one Redis: exactness
# with 200 concurrent requests through two nginx instances (2 workers each,
# one over TCP, one over a unix socket); db= selects the database.
use strict;
use warnings;
use Test::More;
use lib 't/lib';
use MLGuard::Test;
use MLGuard::Parallel;

my $ga = MLGuard::Test->new(workers => 2);
$ga->start_redis;
$ga->start_echo;
my $gb = MLGuard::Test->new(workers => 2);
my $redis_tcp = $ga->redis_addr;
my $redis_sock = $ga->redis_socket;

my $loc = q{
    location /a {
        ml_guard on; ml_guard_auth none;
        ml_guard_rate_limit 1r/m burst=49 key=$http_x_k;
        proxy_pass http://%%ECHO%%;
    }
};
$ga->start_nginx(http => "ml_guard_redis $redis_tcp timeout=2s;", server => $loc);
$gb->{echo_addr} = $ga->echo_addr;
$gb->start_nginx(http => "ml_guard_redis unix:$redis_sock timeout=2s;", server => $loc);

for my $round (1 .. 2) {
    my @reqs = map {
        { port => ($_ % 2 ? $ga->port : $gb->port), path => '/a',
          headers => { 'X-K' => "round$round" } }
    } 1 .. 200;
    my @res = MLGuard::Parallel::requests(\@reqs, timeout => 30);
    my %st;
    $st{ $_->{status} }++ for @res;
    is($st{200}, 50, "round $round: 200 concurrent requests via two gateways: exactly 50 allowed")
        or diag explain \%st;
    is($st{429}, 150, "round $round: the other 150 get 429");
    my %via;
    $via{ $_ % 2 ? 'a' : 'b' } += $res[$_ - 1]{status} == 200 for 1 .. 200;
    ok($via{a} > 0 && $via{b} > 0, "both gateways allowed some ($via{a} + $via{b})");
    my @rem = sort { $a <=> $b } map { $_->{headers}{'ratelimit-remaining'} }
        grep { $_->{status} == 200 } @res;
    is_deeply(\@rem, [ 0 .. 49 ], 'each remaining value 0..49 handed out exactly once');
}

like($ga->read_file('logs/error.log') . $gb->read_file('logs/error.log'), qr/^(?!.*unavailable)/s,
     'no gateway lost Redis');
$gb->stop;
$ga->stop_nginx;

# db= selects the database
$ga->start_nginx(http => "ml_guard_redis $redis_tcp db=3;", server => $loc);
is($ga->request(GET => '/a', headers => { 'X-K' => 'db' })->{status}, 200, 'db=3: allowed');
like($ga->redis_cli('-n', 3, 'DBSIZE'), qr/^1$/m, 'db=3: the key is in database 3');
$ga->stop;

done_testing();

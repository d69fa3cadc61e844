# Rate-limit and Redis metrics in ml_guard_metrics: outcomes, timeouts,
# connected workers and open breakers.
use strict;
use warnings;
use Test::More;
use lib 't/lib';
use MLGuard::Test qw(wait_for);

my $t = MLGuard::Test->new(workers => 2);
$t->start_redis;
$t->start_echo;
$t->start_nginx(http => 'ml_guard_redis unix:%%REDIS_SOCKET%% timeout=50ms;', server => q{
    location /a {
        ml_guard on; ml_guard_auth none;
        ml_guard_rate_limit 1r/m burst=2 key=$http_x_k;
        proxy_pass http://%%ECHO%%;
    }
    location = /metrics { ml_guard_metrics; }
});

sub metrics {
    my %m;
    for (split /\n/, $t->request(GET => '/metrics')->{content} // '') {
        my ($name, $value) = /^([^#]\S*)\s+(\S+)$/ or next;
        $m{$name} = $value;
    }
    return \%m;
}
sub rl { metrics()->{qq{ml_guard_ratelimit_checks_total{outcome="$_[0]"}}} }

ok(wait_for(sub { metrics()->{ml_guard_redis_connected_workers} == 2 }, 5), 'both workers connected');
is(metrics()->{ml_guard_redis_breaker_open_workers}, 0, 'no breaker open');
ok(metrics()->{ml_guard_redis_reconnects_total} >= 2, 'connections counted');

$t->request(GET => '/a', headers => { 'X-K' => 'm' }) for 1 .. 4;
is(rl('allowed'), 3, 'allowed counted');
is(rl('limited'), 1, 'limited counted');

kill 'STOP', $t->redis_pid;
$t->request(GET => '/a', headers => { 'X-K' => "f$_" }) for 1 .. 6;
my $m = metrics();
ok($m->{'ml_guard_redis_failures_total{kind="timeout"}'} >= 1, 'timeouts counted');
ok($m->{ml_guard_redis_breaker_open_workers} >= 1, 'open breakers counted');
is($m->{'ml_guard_ratelimit_checks_total{outcome="local"}'}, 6, 'local decisions counted');
kill 'CONT', $t->redis_pid;
ok(wait_for(sub { my $m = metrics(); $m->{ml_guard_redis_breaker_open_workers} == 0
                  && $m->{ml_guard_redis_connected_workers} == 2 }, 8), 'breakers closed again');
$t->stop;

done_testing();

# Redis trouble: frozen with SIGSTOP in each fail= mode (and the latency
# while frozen once the breaker is open), killed and restarted, its script
# cache flushed (NOSCRIPT), and a client that disconnects while its Redis
# reply is pending.  State changes are logged once.
use strict;
use warnings;
use Test::More;
use HTTP::Tiny;
use Time::HiRes qw(time sleep);
use IO::Socket::INET;
use lib 't/lib';
use MLGuard::Test qw(wait_for);

my $t = MLGuard::Test->new;
$t->start_redis;
$t->start_echo;

sub config {
    my ($redis_args) = @_;
    return (
        http => "ml_guard_redis unix:%%REDIS_SOCKET%% $redis_args;",
        server => q{
            location /a {
                ml_guard on; ml_guard_auth none;
                ml_guard_rate_limit 1r/m burst=2 key=$http_x_k;
                proxy_pass http://%%ECHO%%;
            }
            location /plain {
                ml_guard on; ml_guard_auth none;
                proxy_pass http://%%ECHO%%;
            }
        },
    );
}

my $http = HTTP::Tiny->new(keep_alive => 1, timeout => 10);
my $seq = 0;

sub get {
    my ($k, $path) = @_;
    my $res = $http->get($t->url($path // '/a'), { headers => { 'X-K' => $k } });
    if (($res->{headers}{'content-type'} // '') =~ /json/) {
        $res->{json} = eval { JSON::PP->new->decode($res->{content}) };
    }
    return $res;
}

sub statuses { my ($k, $n) = @_; return [ map { get($k)->{status} } 1 .. $n ] }

sub count_log { my ($re) = @_; return scalar(() = $t->read_file('logs/error.log') =~ /$re/g) }

sub p50 {
    my @v = sort { $a <=> $b } @_;
    return $v[ int($#v / 2) ];
}

sub redis_signal { kill $_[0], $t->redis_pid }

my %expect_frozen = (
    local  => sub {
        my $r = [ map { get('frozen-x') } 1 .. 4 ];
        is_deeply([ map { $_->{status} } @$r ], [ 200, 200, 200, 429 ],
                  'fail=local: the same limit enforced in shared memory');
        is($r->[0]{headers}{'ratelimit-remaining'}, 2, 'fail=local: RateLimit headers');
        is($r->[3]{json}{reason}, 'rate_limited', 'fail=local: 429 rate_limited');
        is($r->[3]{headers}{'retry-after'}, 60, 'fail=local: Retry-After');
    },
    open   => sub {
        my $r = [ map { get('frozen-x') } 1 .. 5 ];
        is_deeply([ map { $_->{status} } @$r ], [ (200) x 5 ], 'fail=open: everything allowed');
        ok(!defined $r->[0]{headers}{'ratelimit-remaining'}, 'fail=open: no RateLimit headers');
    },
    closed => sub {
        my $r = get('frozen-x');
        is($r->{status}, 503, 'fail=closed: 503');
        is($r->{json}{reason}, 'limiter_unavailable', 'fail=closed: reason limiter_unavailable');
        ok($r->{headers}{'retry-after'} >= 1, 'fail=closed: Retry-After');
        is(get('frozen-x', '/plain')->{status}, 200, 'fail=closed: unlimited locations unaffected');
    },
);

for my $mode (qw(local open closed)) {
    $t->start_nginx(config("timeout=50ms fail=$mode"));
    my $down0 = count_log(qr/redis \S+ unavailable/);
    my $up0 = count_log(qr/redis \S+ available again/);

    is_deeply(statuses("warm-$mode", 4), [ 200, 200, 200, 429 ], "$mode: limits work with Redis up");

    redis_signal('STOP');
    my $t0 = time;
    my $first = get("first-$mode");
    my $waited = time - $t0;
    ok($waited >= 0.04 && $waited < 1, sprintf("$mode: the first request waited for the timeout (%.0f ms)", $waited * 1000));
    is($first->{status}, $mode eq 'closed' ? 503 : 200, "$mode: first request answered per fail=$mode");
    ok(wait_for(sub { count_log(qr/redis \S+ unavailable/) > $down0 }, 2), "$mode: outage logged");
    like($t->read_file('logs/error.log'), qr/unavailable: command timed out; limits fail \Q$mode\E/,
         "$mode: the log says why and what happens");

    # latency with the breaker open: added p50 under 5 ms
    my (@lim, @plain);
    for my $i (1 .. 25) {
        my $s = time; get("lat-$mode-$i"); push @lim, time - $s;
        $s = time; get("lat-$mode-$i", '/plain'); push @plain, time - $s;
    }
    my $added = (p50(@lim) - p50(@plain)) * 1000;
    ok($added < 5, sprintf("$mode: p50 added latency while frozen %.2f ms (limit %.2f, plain %.2f)",
                           $added, p50(@lim) * 1000, p50(@plain) * 1000));

    $expect_frozen{$mode}->();
    is(count_log(qr/redis \S+ unavailable/) - $down0, 1, "$mode: the outage logged once, not per request");

    redis_signal('CONT');
    ok(wait_for(sub { count_log(qr/redis \S+ available again/) > $up0 }, 6), "$mode: recovery logged");
    is(count_log(qr/redis \S+ available again/) - $up0, 1, "$mode: recovery logged once");
    is_deeply(statuses("after-$mode", 4), [ 200, 200, 200, 429 ], "$mode: limits in Redis again");
    like($t->redis_cli('--scan', '--pattern', '*'), qr/1r\/m:b2/, "$mode: keys written to Redis again");

    $t->stop_nginx;
}

# --- killed and restarted ----------------------------------------------------------------
{
    $t->start_nginx(config('timeout=50ms fail=local'));
    my $down0 = count_log(qr/unavailable/);
    my $up0 = count_log(qr/available again/);
    is_deeply(statuses('k1', 2), [ 200, 200 ], 'kill: warm');
    $t->stop_redis;
    is(get('k2')->{status}, 200, 'Redis gone: request answered locally');
    ok(wait_for(sub { count_log(qr/unavailable/) > $down0 }, 2), 'loss logged');
    is_deeply(statuses('k3', 4), [ 200, 200, 200, 429 ], 'Redis gone: local limits');
    $t->start_redis;
    ok(wait_for(sub { count_log(qr/available again/) > $up0 }, 6), 'reconnected after restart');
    is_deeply(statuses('k4', 4), [ 200, 200, 200, 429 ], 'limits resume in Redis');
    like($t->redis_cli('DBSIZE'), qr/^1$/m, 'the new Redis holds the limit key');
    $t->stop_nginx;
}

# --- NOSCRIPT after SCRIPT FLUSH -----------------------------------------------------------
{
    $t->start_nginx(config('timeout=200ms'));
    my $down0 = count_log(qr/unavailable/);
    is(get('f1')->{status}, 200, 'flush: warm');
    like($t->redis_cli('SCRIPT', 'FLUSH'), qr/OK/, 'SCRIPT FLUSH');
    is_deeply(statuses('f2', 4), [ 200, 200, 200, 429 ], 'after SCRIPT FLUSH: the script is reloaded, limits exact');
    like($t->redis_cli('INFO', 'commandstats'), qr/cmdstat_eval:calls=1,/, 'reloaded with one EVAL');
    is(count_log(qr/unavailable/), $down0, 'NOSCRIPT is not an outage');
    $t->stop_nginx;
}

# --- client disconnects while its Redis reply is pending ----------------------------------
{
    $t->start_nginx(config('timeout=3s fail=local'));
    is(get('d1')->{status}, 200, 'disconnect: warm');
    redis_signal('STOP');
    my $t0 = time;
    for my $i (1 .. 3) {
        my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $t->port, Proto => 'tcp')
            or die "connect: $!";
        print $s "GET /a HTTP/1.1\r\nHost: x\r\nX-K: gone$i\r\n\r\n";
        # the request is waiting on Redis once nginx read it; then go away
        wait_for(sub { 0 }, 0.1);
        close $s;
    }
    ok(wait_for(sub { (() = $t->read_file('logs/access.log') =~ m{"GET /a HTTP/1.1" 499}g) == 3 }, 2),
       'the requests were finalized (499) while their replies were pending');
    ok(time - $t0 < 2.9, 'well before the Redis timeout');
    redis_signal('CONT');
    is_deeply(statuses('d2', 4), [ 200, 200, 200, 429 ], 'late replies were dropped safely; limits go on');
    $t->stop_nginx;
}

$t->stop;
done_testing();

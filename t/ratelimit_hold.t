# Holding a batch while the worker is busy: with no batch at Redis, a batch
# waits for the end of the event-loop turn, and then one more turn at a time
# while turns keep adding checks to it (at most 64 turns and 2 ms).  An idle
# worker sends after one quiet turn; a busy one sends fewer, larger batches.
# The module logs each batch at debug level: "batch of N checks, M
# operations, held K turns".  A frozen worker's backlog makes the checks
# arrive one per turn, so holding is shown deterministically; 200 concurrent
# requests then check exactness and the bounds.
use strict;
use warnings;
use Test::More;
use lib 't/lib';
use MLGuard::Test qw(wait_for);
use MLGuard::Parallel;
use IO::Socket::INET;

my $t = MLGuard::Test->new(workers => 1);
$t->start_redis;
$t->start_echo;
$t->start_nginx(
    main => 'error_log %%DIR%%/logs/debug.log debug;',
    http => 'ml_guard_redis unix:%%REDIS_SOCKET%% timeout=10s fail=closed;',
    server => q{
        location /a {
            ml_guard on; ml_guard_auth none;
            ml_guard_rate_limit 1r/m burst=39 key=$http_x_k;
            proxy_pass http://%%ECHO%%;
        }
    });

sub batches {
    my @b;
    for (split /\n/, $t->read_file('logs/debug.log')) {
        push @b, { checks => $1, ops => $2, turns => $3 }
            if /ml_guard redis: batch of (\d+) checks, (\d+) operations, held (\d+) turns/;
    }
    return @b;
}

is($t->request(GET => '/a', headers => { 'X-K' => 'warm' })->{status}, 200,
   'warm-up: connected, script loaded');
my $seen = () = batches();
ok($seen >= 1, 'batches are logged at debug level');
$t->redis_cli('CONFIG', 'RESETSTAT');
my $before = $seen;

# one request on an idle worker: sent after one turn that added nothing
is($t->request(GET => '/a', headers => { 'X-K' => 'alone' })->{status}, 200, 'a lone request is answered');
my @b = batches();
is_deeply([ @{ $b[-1] }{qw(checks ops turns)} ], [1, 1, 1], 'its batch: 1 check, held 1 turn');

# One check per turn, deterministically: the worker is frozen while ten
# clients connect and send; thawed, it accepts one connection per turn
# (multi_accept off, the listening socket level-triggered), so the checks
# arrive in consecutive turns.  Without the hold the first would go alone.
{
    my ($wpid) = $t->worker_pids;
    kill 'STOP', $wpid;
    my @socks = map {
        my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $t->port, Proto => 'tcp')
            or die "connect: $!";
        print $s "GET /a HTTP/1.0\r\nHost: localhost\r\nX-K: turn$_\r\n\r\n";
        $s;
    } 1 .. 10;
    my $before_thaw = () = batches();
    kill 'CONT', $wpid;
    local $SIG{ALRM} = sub { die "no answer in 30 s\n" };
    alarm 30;
    my @status = map { local $/; my $r = readline($_) // ''; $r =~ m{^HTTP/1\.\d (\d+)} ? $1 : 0 } @socks;
    alarm 0;
    is_deeply(\@status, [ (200) x 10 ], 'ten requests from a frozen worker\'s backlog: all answered');
    my @held = batches();
    splice @held, 0, $before_thaw;
    my $n = 0;
    $n += $_->{checks} for @held;
    is($n, 10, 'their 10 checks went in ' . scalar(@held) . ' batch(es), held '
               . join('+', map { $_->{turns} } @held) . ' turns');
    cmp_ok($held[0]{checks}, '>=', 2, 'the first batch waited for checks of later turns')
        or diag(explain(\@held));
}
$seen = () = batches();

# 200 requests at once, 4 clients: the worker reads them over many turns
my @res = MLGuard::Parallel::requests(
    [ map { { port => $t->port, path => '/a', headers => { 'X-K' => "c" . ($_ % 4) } } } 1 .. 200 ],
    timeout => 30);
my %st;
$st{ ($_ % 4) . " $res[$_ - 1]{status}" }++ for 1 .. 200;
is_deeply([ map { $st{"$_ 200"} } 0 .. 3 ], [40, 40, 40, 40], 'each client: exactly 40 allowed (burst 39)')
    or diag(explain(\%st));
is_deeply([ map { $st{"$_ 429"} } 0 .. 3 ], [10, 10, 10, 10], 'the other 10 each denied');

@b = batches();
splice @b, 0, $seen;
my $checks = 0;
$checks += $_->{checks} for @b;
is($checks, 200, 'the 200 checks went in ' . scalar(@b) . ' batch(es), held ' . join('+', map { $_->{turns} } @b) . ' turns');
ok(!(grep { $_->{turns} > 64 } @b), 'none held over 64 turns');
ok(!(grep { $_->{ops} > 4 } @b), 'a batch holds one counted operation per client');
my ($calls) = $t->redis_cli('INFO', 'commandstats') =~ /cmdstat_evalsha:calls=(\d+)/;
is($calls, scalar(batches()) - $before, 'one script call per logged batch');

$t->stop;
done_testing();

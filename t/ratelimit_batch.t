# Batching: the checks a worker makes while its previous batch is at Redis
# wait for that batch's reply and then go to Redis together, as one script
# call, still exact and in order.  Redis is frozen (SIGSTOP) so that the
# batches are deterministic: 1 request, then 10 more -> 2 script calls, and
# the identical checks among the ten are counted together ("6L ..").
use strict;
use warnings;
use Test::More;
use POSIX ();
use lib 't/lib';
use MLGuard::Test qw(wait_for);
use MLGuard::Parallel;

my $t = MLGuard::Test->new(workers => 1);
$t->start_redis;
$t->start_echo;
$t->start_nginx(
    http => 'ml_guard_redis unix:%%REDIS_SOCKET%% timeout=10s fail=closed;',
    server => q{
        location = /status { stub_status; }
        location /a {
            ml_guard on; ml_guard_auth none;
            ml_guard_rate_limit 1r/m burst=5 key=$http_x_k;
            proxy_pass http://%%ECHO%%;
        }
    });

is($t->request(GET => '/a', headers => { 'X-K' => 'warm' })->{status}, 200,
   'warm-up: connected, script loaded');
$t->redis_cli('CONFIG', 'RESETSTAT');
# every command into the slow log, to see what the script calls carried
$t->redis_cli('CONFIG', 'SET', 'slowlog-log-slower-than', '0');
$t->redis_cli('SLOWLOG', 'RESET');

# requests nginx is working on (the status request itself is one)
sub writing {
    my $r = $t->request(GET => '/status');
    return $r->{content} =~ /Writing: (\d+)/ ? $1 : -1;
}

# runs requests in a child; returns a reader for "status remaining" lines
sub in_background {
    my @keys = @_;
    pipe(my $rd, my $wr) or die "pipe: $!";
    my $pid = fork() // die "fork: $!";
    if ($pid == 0) {
        close $rd;
        my @res = MLGuard::Parallel::requests(
            [ map { { port => $t->port, path => '/a', headers => { 'X-K' => $_ } } } @keys ],
            timeout => 30);
        print $wr join('', map { "$keys[$_] $res[$_]{status} "
                                 . ($res[$_]{headers}{'ratelimit-remaining'} // '-') . "\n" } 0 .. $#res);
        close $wr;
        POSIX::_exit(0);
    }
    close $wr;
    return { pid => $pid, fh => $rd };
}

sub collect {
    my ($bg) = @_;
    my $fh = $bg->{fh};
    my @lines = <$fh>;
    waitpid($bg->{pid}, 0);
    return map { [ split ' ' ] } @lines;
}

kill 'STOP', $t->redis_pid;
my $first = in_background('k1');
ok(wait_for(sub { writing() == 2 }, 10), 'first request waits for frozen Redis');
my $rest = in_background(('k1') x 6, ('k2') x 4);
ok(wait_for(sub { writing() == 12 }, 10), 'ten more wait behind it');
kill 'CONT', $t->redis_pid;

my (%st, %rem);
for (collect($first), collect($rest)) {
    $st{"$_->[0] $_->[1]"}++;
    push @{ $rem{$_->[0]} }, $_->[2];
}
is($st{'k1 200'}, 6, 'k1 (burst 5): 6 allowed');
is($st{'k1 429'}, 1, 'k1: the 7th denied');
is($st{'k2 200'}, 4, 'k2: all 4 allowed');
# each of a counted operation's requests is told its own place in line
is_deeply([ sort @{ $rem{k1} } ], [0, 0, 1, 2, 3, 4, 5], 'k1: RateLimit-Remaining 5..0, and 0 when denied');
is_deeply([ sort @{ $rem{k2} } ], [2, 3, 4, 5], 'k2: RateLimit-Remaining 5..2');

my ($calls) = $t->redis_cli('INFO', 'commandstats') =~ /cmdstat_evalsha:calls=(\d+)/;
is($calls, 2, '11 requests, 2 script calls: the ten went as one batch');
unlike($t->redis_cli('INFO', 'commandstats'), qr/cmdstat_eval:/,
       'never resent as EVAL: the SHA-1 the module sends is the loaded script\'s');

# the ten are two counted operations: "6L .." for k1, "4L .." for k2
my @specs = grep { /^\d*[LBF] / } split /\n/, $t->redis_cli('SLOWLOG', 'GET', '100');
is_deeply([ map { /^(\d*)L / ? $1 || 1 : '?' } @specs ], [6, 4, 1],
          'script calls carried 1 request, then k1 x6 and k2 x4 as two operations');

$t->stop;
done_testing();

# Holding a batch while the worker is busy: with no batch at Redis, a batch
# waits for the end of the event-loop turn, and then one more turn at a time
# while turns keep adding checks to it (at most 64 turns and 2 ms).  An idle
# worker sends after one quiet turn; a busy one sends fewer, larger batches.
# The module logs each batch at debug level: "batch of N checks, M
# operations, held K turns".
use strict;
use warnings;
use Test::More;
use lib 't/lib';
use MLGuard::Test qw(wait_for);
use MLGuard::Parallel;

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
$seen = @b;

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
ok((grep { $_->{turns} >= 2 && $_->{checks} > 1 } @b),
   'a batch was held over more than one turn while checks kept coming')
    or diag(explain(\@b));
ok(!(grep { $_->{turns} > 64 } @b), 'none held over 64 turns');
ok(!(grep { $_->{ops} > 4 } @b), 'a batch holds one counted operation per client');
my ($calls) = $t->redis_cli('INFO', 'commandstats') =~ /cmdstat_evalsha:calls=(\d+)/;
is($calls, scalar(batches()) - $before, 'one script call per logged batch');

$t->stop;
done_testing();

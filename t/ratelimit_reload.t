# nginx -s reload while requests wait for Redis: the old worker finishes
# them (its command timers keep it alive), the new worker uses the new
# configuration, nothing crashes.
use strict;
use warnings;
use Test::More;
use lib 't/lib';
use MLGuard::Test qw(wait_for);
use MLGuard::Parallel;

my $t = MLGuard::Test->new;
$t->start_redis;
$t->start_echo;

sub server {
    my ($burst) = @_;
    return (
        http => 'ml_guard_redis unix:%%REDIS_SOCKET%% timeout=5s fail=closed;'
              . ' log_format withpid "$pid $http_x_k $status";',
        server => qq{
            location /a {
                access_log %%DIR%%/logs/pid.log withpid;
                ml_guard on; ml_guard_auth none;
                ml_guard_rate_limit 1r/m burst=$burst key=\$http_x_k;
                proxy_pass http://%%ECHO%%;
            }
        },
    );
}

$t->start_nginx(server(49));
is($t->request(GET => '/a', headers => { 'X-K' => 'warm' })->{status}, 200, 'warm');

kill 'STOP', $t->redis_pid;
pipe(my $rd, my $wr) or die "pipe: $!";
my $kid = fork // die "fork: $!";
if ($kid == 0) {
    close $rd;
    my @res = MLGuard::Parallel::requests(
        [ map { { port => $t->port, path => '/a', headers => { 'X-K' => 'inflight' } } } 1 .. 20 ],
        timeout => 20);
    syswrite $wr, join(',', map { $_->{status} } @res) . "\n";
    POSIX::_exit(0);
}
close $wr;
# let nginx read them: they then wait on the frozen Redis
wait_for(sub { 0 }, 0.3);
$t->reload_nginx(server(0));
kill 'CONT', $t->redis_pid;

my $line = <$rd>;
waitpid($kid, 0);
chomp $line;
my @st = split /,/, $line;
is(scalar(@st), 20, '20 requests were in flight during the reload');
is(scalar(grep { $_ == 200 } @st), 20, 'all completed with 200 after Redis answered') or diag $line;

my ($old) = $t->read_file('logs/pid.log') =~ /^(\d+) warm 200$/m;
my @inflight = $t->read_file('logs/pid.log') =~ /^(\d+) inflight 200$/mg;
is(scalar(grep { $_ == $old } @inflight), 20, 'all 20 were served by the old worker, after the reload');
ok(wait_for(sub { $t->read_file('logs/error.log') =~ /worker process $old exited with code 0/ }, 10),
   'the old worker exited cleanly after finishing them');
my @new = map { $t->request(GET => '/a', headers => { 'X-K' => 'new' })->{status} } 1 .. 2;
is_deeply(\@new, [ 200, 429 ], 'the new worker enforces the new limit (burst=0)');
$t->stop;

done_testing();

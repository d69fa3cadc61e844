# Faults under load: the backend killed and restarted, Redis frozen and
# killed and restarted, nginx reloaded, all while clients keep calling
# through the full policy.  No crashed worker, no request hanging past its
# timeout, every failure a problem document, and recovery without
# restarting nginx.  The counts of each status are reported.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use HTTP::Tiny;
use JSON::PP;
use POSIX qw(:sys_wait_h);
use Time::HiRes qw(time);
use MLGuard::Test qw(sha256_hex_of random_key wait_for);
use MLGuard::Backend;

my $root = MLGuard::Test::root();
plan skip_all => 'backend not built' unless -x "$root/build/ml-guard-backend";

my $t = MLGuard::Test->new(workers => 2);
my $key = random_key();
$t->write_file('keys.txt', "load " . sha256_hex_of($key) . " predict\n");
my $redis = $t->start_redis;
my $bdir = $t->dir . '/backend';
mkdir $bdir;
chmod 0755, $bdir;
my $backend = MLGuard::Backend->start(models => ["$root/conf/models/iris.mlgf"], dir => $bdir, threads => 2);
$t->start_nginx(
    http => q{
        ml_guard_redis %%REDIS%% timeout=50ms fail=local;
        upstream model { server unix:%%DIR%%/backend/backend.sock; keepalive 16; }
    },
    server => q{
        location = /predict {
            ml_guard on;
            ml_guard_api_keys %%DIR%%/keys.txt;
            ml_guard_roles predict;
            ml_guard_max_body 16k;
            ml_guard_schema %%ROOT%%/conf/schemas/iris.json;
            ml_guard_rate_limit 10000r/s burst=10000;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_connect_timeout 1s;
            proxy_read_timeout 3s;
            proxy_pass http://model;
        }
    });

# --- load: a few client processes, each logging "status ms problem" -------
my $logdir = $t->dir . '/load';
mkdir $logdir;
my $stop = "$logdir/stop";
my @kids;
for my $n (1 .. 3) {
    my $pid = fork // die;
    if ($pid == 0) {
        my $http = HTTP::Tiny->new(timeout => 10, keep_alive => 1);
        open my $out, '>>', "$logdir/$n.log" or POSIX::_exit(1);
        $out->autoflush(1);
        until (-e $stop) {
            my $t0 = time;
            my $r = $http->post($t->url('/predict'), {
                headers => { 'X-API-Key' => $key, 'Content-Type' => 'application/json' },
                content => '{"input": [6.3, 3.3, 6.0, 2.5]}' });
            my $ms = int((time - $t0) * 1000);
            my $problem = ($r->{headers}{'content-type'} // '') =~ m{^application/problem\+json} ? 1 : 0;
            my $reason = $problem ? (eval { decode_json($r->{content})->{reason} } // '?') : '-';
            print $out "$r->{status} $ms $problem $reason\n";
        }
        POSIX::_exit(0);
    }
    push @kids, $pid;
}

sub results {
    my @r;
    for my $f (glob "$logdir/*.log") {
        open my $fh, '<', $f or next;
        push @r, map { chomp; [split / /] } grep { /^\d+ \d+ \d \S+\n?$/ } <$fh>;
    }
    return @r;
}
sub count_ok { scalar grep { $_->[0] == 200 } results() }
sub more_ok {
    my ($n, $what) = @_;
    my $base = count_ok();
    ok wait_for(sub { count_ok() >= $base + $n }, 15), "$what: $n more requests succeed";
}

more_ok(30, 'baseline');

# the backend dies: nginx answers 502 as a problem document, and recovers
# when it is back, without a restart
$backend->signal('KILL');
$backend->wait_exit(5);
my $n502 = sub { scalar grep { $_->[0] == 502 } results() };
ok wait_for(sub { $n502->() >= 5 }, 10), 'backend down: clients get 502';
$backend = MLGuard::Backend->start(models => ["$root/conf/models/iris.mlgf"], dir => $bdir, threads => 2);
more_ok(30, 'backend restarted');

# Redis frozen: fail=local keeps serving
kill 'STOP', $redis->{pid};
more_ok(30, 'Redis frozen (SIGSTOP)');
kill 'CONT', $redis->{pid};
more_ok(10, 'Redis thawed');

# Redis killed and restarted on the same port
my $port = $redis->{port};
$t->stop_redis;
more_ok(30, 'Redis killed');
$redis = $t->start_redis(port => $port);
more_ok(10, 'Redis restarted');
ok wait_for(sub { $t->redis_cli('DBSIZE') =~ /^[1-9]/ }, 10), 'the gateways use Redis again after its restart';

# nginx reloaded under load
$t->reload_nginx;
more_ok(30, 'after an nginx reload');

# --- stop the load and look at every response -----------------------------
open my $fh, '>', $stop or die;
close $fh;
for my $pid (@kids) {
    ok wait_for(sub { waitpid($pid, WNOHANG) == $pid }, 15), "client $pid finished";
}

my @all = results();
my %status;
$status{$_->[0]}++ for @all;
my %reasons;
$reasons{"$_->[0] $_->[3]"}++ for grep { $_->[0] != 200 } @all;
diag sprintf 'faults under load: %d requests; by status: %s; failures: %s', scalar @all,
    join(', ', map { "$_ x$status{$_}" } sort keys %status),
    join(', ', map { "$_ x$reasons{$_}" } sort keys %reasons) || 'none';

my @unexpected = grep { $_->[0] != 200 && $_->[0] != 502 && $_->[0] != 503 && $_->[0] != 504 } @all;
is scalar @unexpected, 0, 'only 200 and 502/503/504 were answered'
    or diag explain [ @unexpected[0 .. ($#unexpected < 5 ? $#unexpected : 5)] ];
my @not_problem = grep { $_->[0] != 200 && !$_->[2] } @all;
is scalar @not_problem, 0, 'every failure was application/problem+json';
is scalar(grep { $_->[0] == 502 && $_->[3] ne 'upstream_unavailable' } @all), 0,
   '502s say upstream_unavailable';
my ($slowest) = sort { $b <=> $a } map { $_->[1] } @all;
cmp_ok $slowest, '<', 5000, "no request hung (slowest ${slowest} ms, proxy timeouts 1s/3s)";

$backend->stop;
$t->stop;
done_testing;

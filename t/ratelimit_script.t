# The Redis rate-limit script (ngx_ml_guard_module/mlg_ratelimit.lua) run
# directly against a private redis-server: GCRA burst/sustained/refill, several
# limits in one call (a denial consumes nothing), TTLs, the lockout modes,
# argument checking, and exactness with concurrent clients.
use strict;
use warnings;
use Test::More;
use Time::HiRes qw(time sleep);
use Digest::SHA qw(sha1_hex);
use lib 't/lib';
use MLGuard::RESP;

my $SEC = 1_000_000;
my $MIN = 60 * $SEC;

open my $fh, '<', 'ngx_ml_guard_module/mlg_ratelimit.lua' or die "script: $!";
my $script = do { local $/; <$fh> };
close $fh;

my $srv = MLGuard::RESP::start_server();
END { MLGuard::RESP::stop_server($srv) if $srv }
my $r = MLGuard::RESP->connect($srv->{socket}) or die "connect: $!";

my $sha = $r->cmd('SCRIPT', 'LOAD', $script);
is($sha, sha1_hex($script), 'SCRIPT LOAD returns the sha1 the module computes');

# limit(KEYS => [..], limits => [[T, tau], ...]) -> {allowed, index, ...}
sub limit {
    my ($conn, $keys, @lims) = @_;
    my $v = $conn->cmd('EVALSHA', $sha, scalar(@$keys), @$keys, 'limit',
                       map { @$_ } @lims);
    die "script error: $v->{error}" if ref $v eq 'HASH';
    return { allowed => $v->[0], index => $v->[1], remaining => $v->[2],
             reset => $v->[3], retry => $v->[4] };
}

# --- burst: 1r/m burst=49 allows exactly 50 at once -----------------------
{
    my @lim = ($MIN, 49 * $MIN);
    my (@rem, $allowed, $first_denied);
    for my $i (1 .. 200) {
        my $res = limit($r, ['t:burst'], \@lim);
        if ($res->{allowed}) { $allowed++; push @rem, $res->{remaining} }
        else { $first_denied //= $res }
    }
    is($allowed, 50, '1r/m burst=49: exactly 50 of 200 allowed');
    is_deeply(\@rem, [ reverse 0 .. 49 ], 'remaining counts down 49..0');
    ok($first_denied->{retry} > 59 * $SEC && $first_denied->{retry} <= $MIN,
       "denied: retry-after about 60 s ($first_denied->{retry} us)");
    is($first_denied->{remaining}, 0, 'denied: remaining 0');
    my $pttl = $r->cmd('PTTL', 't:burst');
    ok($pttl > 49 * 60_000 && $pttl <= 50 * 60_000,
       "key expires when the budget is full again ($pttl ms)");
    my $tat = $r->cmd('GET', 't:burst');
    like($tat, qr/^\d{16}$/, "TAT stored as a plain integer ($tat)");
}

# --- sustained rate and refill: 20r/s burst=0 -----------------------------
{
    my @lim = (50_000, 0);
    my $a = limit($r, ['t:sus'], \@lim);
    is($a->{allowed}, 1, '20r/s: first allowed');
    is($a->{reset}, 50_000, 'reset = one interval');
    my $b = limit($r, ['t:sus'], \@lim);
    is($b->{allowed}, 0, 'second at once denied');
    ok($b->{retry} > 0 && $b->{retry} <= 50_000, "retry within 50 ms ($b->{retry})");
    sleep(($b->{retry} + 1000) / $SEC);
    is(limit($r, ['t:sus'], \@lim)->{allowed}, 1, 'allowed once retry-after passed');

    # offered 4x the rate for ~0.5 s: about 10 allowed
    my ($n, $ok, $t0) = (0, 0, time);
    my @lim2 = (50_000, 0);
    while (time - $t0 < 0.5) {
        $ok += limit($r, ['t:sus2'], \@lim2)->{allowed};
        $n++;
        sleep 0.0125;
    }
    my $elapsed = time - $t0;
    my $max = int($elapsed / 0.05) + 1;
    ok($ok >= $max / 2 && $ok <= $max,
       "sustained: $ok of $n allowed in ${\ sprintf '%.3f', $elapsed} s (max $max)");
}

# --- idle keys vanish --------------------------------------------------------
{
    limit($r, ['t:idle'], [10_000, 0]);
    my $deadline = time + 2;
    sleep 0.005 while $r->cmd('EXISTS', 't:idle') && time < $deadline;
    is($r->cmd('EXISTS', 't:idle'), 0, 'idle key expires after its interval');
}

# --- several limits in one call ---------------------------------------------
{
    my @fast = (100_000, 9 * 100_000);    # 10r/s burst=9
    my @slow = (12 * $SEC, 2 * 12 * $SEC); # 5r/m burst=2
    my $res = limit($r, ['t:m1', 't:m2'], \@fast, \@slow);
    is($res->{allowed}, 1, 'two limits: allowed');
    is($res->{index}, 1, 'tightest limit reported');
    is($res->{remaining}, 2, 'its remaining');
    limit($r, ['t:m1', 't:m2'], \@fast, \@slow) for 1 .. 2;
    my $before = $r->cmd('GET', 't:m1');
    $res = limit($r, ['t:m1', 't:m2'], \@fast, \@slow);
    is($res->{allowed}, 0, 'denied by the slow limit');
    is($res->{index}, 1, 'index names the denying limit');
    ok($res->{retry} > 11 * $SEC && $res->{retry} <= 12 * $SEC,
       "retry about 12 s ($res->{retry})");
    is($r->cmd('GET', 't:m1'), $before, 'denial left the allowing limit untouched');
    my $ok = 0;
    $ok += limit($r, ['t:m1'], \@fast)->{allowed} for 1 .. 10;
    is($ok, 7, 'the fast limit alone still has its 7');
}

# --- lockout -----------------------------------------------------------------
{
    # 3r/m: 3 failures tolerated at once, the 4th bans for 2 s
    my @f = (20 * $SEC, 2 * 20 * $SEC, 2000);
    my $ban = $r->cmd('EVALSHA', $sha, 1, 't:ban', 'ban');
    is($ban->[0], 1, 'no ban yet');
    for my $i (1 .. 3) {
        my $v = $r->cmd('EVALSHA', $sha, 2, 't:af', 't:ban', 'fail', @f);
        is($v->[0], 1, "failure $i tolerated");
        is($v->[2], 3 - $i, "failure $i: " . (3 - $i) . ' more tolerated');
    }
    my $v = $r->cmd('EVALSHA', $sha, 2, 't:af', 't:ban', 'fail', @f);
    is($v->[0], 0, 'failure 4 bans');
    is($v->[4], 2_000_000, 'ban retry = ban time');
    is($r->cmd('EXISTS', 't:af'), 0, 'failure count forgotten once banned');
    $ban = $r->cmd('EVALSHA', $sha, 1, 't:ban', 'ban');
    is($ban->[0], 0, 'banned');
    ok($ban->[4] > 1_500_000 && $ban->[4] <= 2_000_000, "ban retry $ban->[4] us");
    sleep(($ban->[4] + 10_000) / $SEC);
    $ban = $r->cmd('EVALSHA', $sha, 1, 't:ban', 'ban');
    is($ban->[0], 1, 'ban lifted after ban time');
}

# --- argument checking --------------------------------------------------------
{
    my $e = $r->cmd('EVALSHA', $sha, 1, 't:x', 'limit', 'abc', 0);
    like($e->{error} // '', qr/bad argument/, 'non-numeric interval rejected');
    $e = $r->cmd('EVALSHA', $sha, 1, 't:x', 'limit', 0, 0);
    like($e->{error} // '', qr/interval must be positive/, 'zero interval rejected');
    $e = $r->cmd('EVALSHA', $sha, 1, 't:x', 'nonsense');
    like($e->{error} // '', qr/unknown mode/, 'unknown mode rejected');
    is($r->cmd('EXISTS', 't:x'), 0, 'nothing written on errors');
}

# --- exactness under concurrency ----------------------------------------------
{
    my ($clients, $each) = (8, 25);
    my @pids;
    pipe(my $rd, my $wr) or die "pipe: $!";
    for my $c (1 .. $clients) {
        my $pid = fork() // die "fork: $!";
        if ($pid == 0) {
            close $rd;
            my $conn = MLGuard::RESP->connect($srv->{socket}) or POSIX::_exit(2);
            # pipeline all requests at once to maximise interleaving
            $conn->send_raw(join '', map {
                MLGuard::RESP::encode('EVALSHA', $sha, 1, 't:conc', 'limit',
                                      $MIN, 49 * $MIN) } 1 .. $each);
            my $ok = 0;
            for (1 .. $each) {
                my $v = $conn->read_reply;
                $ok += $v->[0] if ref $v eq 'ARRAY';
            }
            syswrite $wr, "$ok\n";
            POSIX::_exit(0);
        }
        push @pids, $pid;
    }
    close $wr;
    my $total = 0;
    $total += $_ for <$rd>;
    waitpid($_, 0) for @pids;
    is($total, 50, "$clients concurrent clients x $each requests: exactly 50 allowed");
}

done_testing();

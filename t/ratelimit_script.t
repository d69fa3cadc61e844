# The Redis rate-limit script (ngx_ml_guard_module/mlg_ratelimit.lua) run
# directly against a private redis-server: GCRA burst/sustained/refill, several
# limits in one operation (a denial consumes nothing), batches of operations
# in one call (in order, on one clock reading), counted operations (c
# identical requests as one), TTLs, the lockout operations,
# argument checking, and exactness with concurrent clients.  The script
# answers, per limit, how far the stored TAT was ahead of Redis's clock;
# decide() derives the result as the module does (mlg_gcra_check_all with
# now = 0), so these tests check the pair.
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

# mlg_gcra_check_all() with now = 0: ahead of the clock by $d[i] per limit
sub decide {
    my ($lims, $d) = @_;
    my $res = { allowed => 1, index => -1, remaining => 0, reset => 0, retry => 0 };
    my $first = 1;
    for my $i (0 .. $#$lims) {
        my ($T, $tau) = @{ $lims->[$i] };
        if ($d->[$i] > $tau) {
            if ($res->{allowed} || $d->[$i] - $tau > $res->{retry}) {
                @$res{qw(index remaining reset retry)} = ($i, 0, $d->[$i], $d->[$i] - $tau);
            }
            $res->{allowed} = 0;
            next;
        }
        my $rem = int(($tau - $d->[$i]) / $T);
        if ($res->{allowed} && ($first || $rem < $res->{remaining})) {
            @$res{qw(index remaining reset)} = ($i, $rem, $d->[$i] + $T);
        }
        $first = 0;
    }
    return $res;
}

sub spec { join ' ', 'L', map { @$_ } @_ }

# limit($conn, [keys], [T, tau], ...) -> {allowed, index, remaining, reset, retry}
sub limit {
    my ($conn, $keys, @lims) = @_;
    my $v = $conn->cmd('EVALSHA', $sha, scalar(@$keys), @$keys, spec(@lims));
    die "script error: $v->{error}" if ref $v eq 'HASH';
    die "expected " . @lims . " values, got " . @$v unless @$v == @lims;
    return decide(\@lims, $v);
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

# --- a batch: operations in order, as if one after another ------------------
{
    my @lim = ($MIN, 2 * $MIN);    # 1r/m burst=2: 3 at once
    my @keys = ('t:b1', 't:b2', 't:b1', 't:b1', 't:b1', 't:b2');
    my $v = $r->cmd('EVALSHA', $sha, scalar(@keys), @keys, (spec(\@lim)) x @keys);
    is(ref $v, 'ARRAY', 'a batch of 6 operations answers');
    my @allowed = map { decide([\@lim], [$_])->{allowed} } @$v;
    is_deeply(\@allowed, [1, 1, 1, 1, 0, 1], 'per key in order: t:b1 allows 3 then denies');
    is_deeply([ @$v[0, 2, 3] ], [0, $MIN, 2 * $MIN], 'each sees the TAT its predecessor left');
    my $pttl = $r->cmd('PTTL', 't:b1');
    ok($pttl > 2 * 60_000 && $pttl <= 3 * 60_000, "one write per key, TTL of the last ($pttl ms)");

    # mixed operations in one batch: limits, a ban check, a failure
    my @f = (20 * $SEC, 0, 1000);
    $v = $r->cmd('EVALSHA', $sha, 5, 't:b3', 't:ban2', 't:af2', 't:ban2', 't:b3',
                 spec([$SEC, 0]), 'B', "F @f", spec([$SEC, 0]));
    is_deeply([ map { $_ > 0 ? 1 : 0 } @$v ], [0, 0, 0, 0, 1], 'L, B, F (two), L: five answers in order');
    $v = $r->cmd('EVALSHA', $sha, 3, 't:af2', 't:ban2', 't:ban2', "F @f", 'B');
    is($v->[0], 0, 'not banned before the second failure');
    is($v->[1] > 0 ? 1 : 0, 1, 'second failure at once is over the limit');
    ok($v->[2] > 900_000 && $v->[2] <= 1_000_000, "ban set in the same batch is seen ($v->[2] us)");
    $v = $r->cmd('EVALSHA', $sha, 3, 't:af2', 't:ban2', 't:ban2', "F @f", 'B');
    ok($v->[0] > 900_000 && $v->[0] <= 1_000_000, "a failure while banned reports the ban ($v->[0] us)");
    is($v->[1], 0, 'and is not counted');
    is($r->cmd('EXISTS', 't:af2'), 0, 'no failure count started while banned');
    # a ban check answers for the end of the call: a failure queued after it
    # in the same batch that bans is seen
    $r->cmd('DEL', 't:ban4', 't:af4');
    $v = $r->cmd('EVALSHA', $sha, 5, 't:ban4', 't:af4', 't:ban4', 't:af4', 't:ban4',
                 'B', "F @f", "F @f");
    is($v->[1], 0, 'first failure counted');
    ok($v->[3] == 0 && $v->[4] > 0, 'second failure counted, over the limit');
    ok($v->[0] > 900_000 && $v->[0] <= 1_000_000, "the ban check before them in the batch sees the ban ($v->[0] us)");
}

# --- counted operations: "cL .." is c identical requests, one after another --
{
    # for random limits and stored TATs, "cL .." must leave the same TATs and
    # allow the same requests as c separate "L .." operations in one batch;
    # the module derives request j's answer as the values + min(j, k) * T
    srand(6);
    my $cases = 0;
    for my $case (1 .. 60) {
        my $n = 1 + int(rand(3));
        # seconds apart: the microseconds between the two calls don't matter
        my @lims = map { my $T = (1 + int(rand(5))) * $SEC; [$T, $T * int(rand(6))] } 1 .. $n;
        my $c = 2 + int(rand(12));
        my (@one, @many);
        for my $i (0 .. $n - 1) {
            push @one, "t:c1:$case:$i";
            push @many, "t:cn:$case:$i";
            # some keys ahead of the clock (used budget), some absent
            my $ahead = int(rand(4)) * $lims[$i][0];
            next unless $ahead;
            my $tat = sprintf '%d', time * $SEC + $ahead;
            $r->cmd('SET', $_, $tat, 'PX', 60_000) for $one[$i], $many[$i];
        }
        my $sep = $r->cmd('EVALSHA', $sha, $n * $c, (@many) x $c, (spec(@lims)) x $c);
        my $cnt = $r->cmd('EVALSHA', $sha, $n, @one, "$c" . spec(@lims));
        die "script error: " . ($sep->{error} // $cnt->{error}) if ref $sep ne 'ARRAY' || ref $cnt ne 'ARRAY';
        my @sep_allowed = map { decide(\@lims, [ @$sep[$_ * $n .. $_ * $n + $n - 1] ])->{allowed} } 0 .. $c - 1;
        my ($k, @d0) = ($cnt->[$n], @$cnt[0 .. $n - 1]);
        my @cnt_allowed = map {
            my $j = $_;
            decide(\@lims, [ map { $d0[$_] + ($j < $k ? $j : $k) * $lims[$_][0] } 0 .. $n - 1 ])->{allowed}
        } 0 .. $c - 1;
        my $same = "@sep_allowed" eq "@cnt_allowed"
            && $k == grep { $_ } @sep_allowed;
        # TATs: the same distance ahead (the two calls read TIME apart)
        for my $i (0 .. $n - 1) {
            my ($a, $b) = map { $r->cmd('GET', $_) // 0 } $one[$i], $many[$i];
            $same &&= abs($a - $b) < 1_000_000 ? 1 : 0;
        }
        $cases += $same;
        diag("case $case differs: c=$c lims=@{[ map { qq{[@$_]} } @lims ]} "
             . "separate @sep_allowed, counted @cnt_allowed (k=$k)") unless $same;
    }
    is($cases, 60, '60 random cases: "cL" answers and stores as c separate "L" operations');

    # 1r/m burst=4: "7L" allows 5; what the 6th and 7th are told
    my $v = $r->cmd('EVALSHA', $sha, 1, 't:cnt', '7' . spec([$MIN, 4 * $MIN]));
    is_deeply($v, [0, 5], '"7L" on a fresh key: ahead 0, 5 allowed');
    my $sixth = decide([[$MIN, 4 * $MIN]], [$v->[0] + 5 * $MIN]);
    is($sixth->{allowed}, 0, 'the 6th is denied');
    is($sixth->{retry}, $MIN, 'retry-after one interval');
    ok(abs($r->cmd('GET', 't:cnt') - ($r->cmd('TIME')->[0] * $SEC + 5 * $MIN)) < 2 * $SEC,
       'TAT moved 5 intervals');
    is_deeply($r->cmd('EVALSHA', $sha, 1, 't:cnt', '3' . spec([$MIN, 4 * $MIN]))->[-1], 0,
              'full: "3L" allows none');
}

# --- lockout -----------------------------------------------------------------
{
    # 3r/m: 3 failures tolerated at once, the 4th bans for 2 s
    my @f = (20 * $SEC, 2 * 20 * $SEC, 2000);
    my $ban = $r->cmd('EVALSHA', $sha, 1, 't:ban', 'B');
    is_deeply($ban, [0], 'no ban yet');
    for my $i (1 .. 3) {
        my $v = $r->cmd('EVALSHA', $sha, 2, 't:af', 't:ban', "F @f");
        is($v->[0], 0, "failure $i: not banned");
        my $res = decide([[ @f[0, 1] ]], [ $v->[1] ]);
        is($res->{allowed}, 1, "failure $i tolerated");
        is($res->{remaining}, 3 - $i, "failure $i: " . (3 - $i) . ' more tolerated');
    }
    my $v = $r->cmd('EVALSHA', $sha, 2, 't:af', 't:ban', "F @f");
    is(decide([[ @f[0, 1] ]], [ $v->[1] ])->{allowed}, 0, 'failure 4 is over the limit');
    is($r->cmd('EXISTS', 't:af'), 0, 'failure count forgotten once banned');
    $ban = $r->cmd('EVALSHA', $sha, 1, 't:ban', 'B');
    ok($ban->[0] > 1_500_000 && $ban->[0] <= 2_000_000, "banned: $ban->[0] us left");
    my $pttl = $r->cmd('PTTL', 't:ban');
    ok($pttl > 1500 && $pttl <= 2000, "ban key expires with the ban ($pttl ms)");
    sleep(($ban->[0] + 10_000) / $SEC);
    $ban = $r->cmd('EVALSHA', $sha, 1, 't:ban', 'B');
    is_deeply($ban, [0], 'ban lifted after ban time');
}

# --- argument checking --------------------------------------------------------
{
    my @bad = (
        [ [1, 't:x', 'L abc 0'], qr/bad number/, 'non-numeric interval' ],
        [ [1, 't:x', 'L 0 0'], qr/bad operation/, 'zero interval' ],
        [ [1, 't:x', 'L 1.5 0'], qr/bad number/, 'fractional interval' ],
        [ [1, 't:x', 'L -1 0'], qr/bad number/, 'negative interval' ],
        [ [1, 't:x', 'L 9007199254740993 0'], qr/bad number/, 'interval beyond 2^53' ],
        [ [1, 't:x', 'L 1'], qr/bad operation/, 'interval without tolerance' ],
        [ [1, 't:x', 'nonsense'], qr/bad operation/, 'unknown operation' ],
        [ [2, 't:x', 't:y', 'L 1 0'], qr/more keys/, 'more keys than used' ],
        [ [1, 't:x', 'L 1 0 1 0'], qr/too few keys/, 'fewer keys than limits' ],
        [ [2, 't:x', 't:y', 'L 1 0', 'F 1 0 0'], qr/bad operation/, 'zero ban' ],
        [ [1, 't:x', '1L 1 0'], qr/bad operation/, 'a count of 1' ],
        [ [1, 't:x', '0L 1 0'], qr/bad operation/, 'a count of 0' ],
        [ [1, 't:x', '65536L 1 0'], qr/bad operation/, 'a count beyond 65535' ],
        [ [1, 't:x', '2B'], qr/bad operation/, 'a counted ban check' ],
        [ [2, 't:x', 't:y', '2F 1 0 1'], qr/bad operation/, 'a counted failure' ],
        [ [1, 't:x', '2L 1 0 x'], qr/bad number/, 'junk after a counted limit' ],
    );
    for my $case (@bad) {
        my ($args, $re, $what) = @$case;
        my $e = $r->cmd('EVALSHA', $sha, @$args);
        like(ref $e eq 'HASH' ? $e->{error} : '', $re, "$what rejected");
    }
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
                MLGuard::RESP::encode('EVALSHA', $sha, 1, 't:conc',
                                      spec([$MIN, 49 * $MIN])) } 1 .. $each);
            my $ok = 0;
            for (1 .. $each) {
                my $v = $conn->read_reply;
                $ok += decide([[$MIN, 49 * $MIN]], $v)->{allowed} if ref $v eq 'ARRAY';
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

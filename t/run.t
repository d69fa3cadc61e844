# scripts/run: the whole stack as a user starts it (TLS at the edge, demo key,
# redirect, metrics, HSTS), and a clean stop on SIGTERM.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use File::Temp qw(tempdir);
use HTTP::Tiny;
use IO::Socket::SSL;
use IO::Socket::UNIX;
use Socket qw(SOCK_STREAM);
use JSON::PP;
use POSIX qw(:sys_wait_h);
use MLGuard::Test qw(free_port wait_for);

my $root = MLGuard::Test::root();
plan skip_all => 'backend not built' unless -x "$root/build/ml-guard-backend";

my $run = tempdir('mlguard-run-XXXXXX', TMPDIR => 1, CLEANUP => 1);
chmod 0755, $run;
my %port = (https => free_port(), http => free_port(), metrics => free_port());

my $pid = fork // die;
if ($pid == 0) {
    setpgrp(0, 0);
    open STDERR, '>', "$run/run.out";
    open STDOUT, '>&', \*STDERR;
    $ENV{MLG_RUN_DIR} = $run;
    $ENV{MLG_HTTPS_PORT} = $port{https};
    $ENV{MLG_HTTP_PORT} = $port{http};
    $ENV{MLG_METRICS_PORT} = $port{metrics};
    $ENV{MLG_NO_SETUP} = 1;
    exec("$root/scripts/run") or POSIX::_exit(127);
}
END { if ($pid) { kill 'KILL', -$pid; } }

my $http = HTTP::Tiny->new(timeout => 10, verify_SSL => 0, SSL_options => { SSL_verify_mode => 0 },
                           max_redirect => 0);
my $base = "https://127.0.0.1:$port{https}";
ok wait_for(sub { ($http->get("$base/healthz")->{status} // 0) == 200 }, 30), 'stack comes up'
    or diag slurp("$run/run.out");

ok wait_for(sub { slurp("$run/run.out") =~ /Ctrl-C stops everything/ }, 10), 'start-up message printed';
my $out = slurp("$run/run.out");
my $key = slurp("$run/demo-api-key");
chomp $key;
like $key, qr/^[A-Za-z0-9_-]{43}$/, 'demo key made on first start';
is((stat "$run/demo-api-key")[2] & 0777, 0600, 'demo key file is mode 0600');
like $out, qr/\Q$key\E/, 'the key is printed once';
like $out, qr{curl -k https://127\.0\.0\.1:$port{https}/predict}, 'with a ready-to-paste curl example';
unlike slurp("$run/api-keys"), qr/\Q$key\E/, 'the key file holds only its hash';

my $r = $http->post("$base/predict", { headers => { 'X-API-Key' => $key, 'Content-Type' => 'application/json' },
                                       content => '{"input": [5.1, 3.5, 1.4, 0.2]}' });
is $r->{status}, 200, 'POST /predict with the demo key' or diag $r->{content};
my $j = eval { decode_json($r->{content}) } || {};
is_deeply $j->{prediction}, [0], 'iris setosa predicted';
like $r->{headers}{'strict-transport-security'} // '', qr/max-age=\d+/, 'HSTS';
ok defined $r->{headers}{'ratelimit-remaining'}, 'rate limit headers';

# a JWT minted from the stack's secret works too
chomp(my $token = `$root/scripts/ml-guard-jwt $run/jwt-secret demo-user predict 300`);
$r = $http->post("$base/predict", { headers => { Authorization => "Bearer $token", 'Content-Type' => 'application/json' },
                                    content => '{"input": [[6.3, 3.3, 6.0, 2.5], [5.1, 3.5, 1.4, 0.2]]}' });
is $r->{status}, 200, 'POST /predict with a JWT from scripts/ml-guard-jwt' or diag $r->{content};
is_deeply eval { decode_json($r->{content})->{prediction} }, [2, 0], 'a batch of two rows';
chomp(my $viewer = `$root/scripts/ml-guard-jwt $run/jwt-secret someone viewer 300`);
$r = $http->post("$base/predict", { headers => { Authorization => "Bearer $viewer", 'Content-Type' => 'application/json' },
                                    content => '{"input": [5.1, 3.5, 1.4, 0.2]}' });
is $r->{status}, 403, 'a JWT without the role: 403';

$r = $http->post("$base/predict", { headers => { 'Content-Type' => 'application/json' },
                                    content => '{"input": [5.1, 3.5, 1.4, 0.2]}' });
is $r->{status}, 401, 'no key: 401';
$r = $http->post("$base/predict", { headers => { 'X-API-Key' => $key, 'Content-Type' => 'application/json' },
                                    content => '{"input": [5.1, 3.5, "x", 0.2]}' });
is $r->{status}, 422, 'schema violation: 422';

$r = $http->get("http://127.0.0.1:$port{http}/predict");
is $r->{status}, 301, 'plain HTTP redirects';
like $r->{headers}{location} // '', qr{^https://[^/]+:$port{https}/predict$}, 'to HTTPS';

$r = $http->get("http://127.0.0.1:$port{metrics}/metrics");
like $r->{content} // '', qr/ml_guard_requests_total\{decision="allow",reason=""\} [1-9]/, 'metrics count the call';

# --- local users: only the nginx workers' group reaches the sockets ---
my $wgid = $> == 0 ? scalar getgrnam('nogroup') : (split ' ', $))[0];
my @st = stat $run;
is(sprintf('%04o', $st[2] & 07777), '0750', 'run dir is 0750');
is($st[5], $wgid, "run dir belongs to the workers' group");
for my $sock ("$run/backend.sock", "$run/redis/redis.sock") {
    @st = stat $sock;
    ok(-S _, "$sock is a socket");
    is(sprintf('%04o', $st[2] & 07777), '0660', "$sock is 0660");
    is($st[5], $wgid, "$sock belongs to the workers' group");
}
@st = stat "$run/redis";
is($st[2] & 0007, 0, 'the Redis directory grants nothing to others');
is((stat "$run/redis-password")[2] & 07777, 0600, 'the Redis password file is 0600');
my $pw = slurp("$run/redis-password");
like($pw, qr/^[0-9a-f]{64}\n$/, 'the password is 32 random bytes in hex');
chomp $pw;
unlike(slurp("/proc/$_/cmdline"), qr/\Q$pw\E/, "the password is not on a command line (pid $_)")
    for grep { index(slurp("/proc/$_/cmdline"), $run) >= 0 } map { m{/proc/(\d+)$} ? $1 : () } glob '/proc/[0-9]*';

sub redis_say {   # sends RESP commands on a fresh connection, returns the replies
    my @cmds = @_;
    my $c = IO::Socket::UNIX->new(Type => SOCK_STREAM, Peer => "$run/redis/redis.sock") or return "connect: $!";
    my $out = '';
    for my $cmd (@cmds) {
        print $c '*' . scalar(@$cmd) . "\r\n" . join('', map { '$' . length($_) . "\r\n$_\r\n" } @$cmd);
        my $line = <$c> // '';
        $out .= $line;
    }
    return $out;
}
like(redis_say(['PING']), qr/^-NOAUTH/, 'Redis refuses a client without the password');
like(redis_say(['FLUSHALL']), qr/^-NOAUTH/, 'FLUSHALL without the password: refused');
like(redis_say(['AUTH', $pw], ['DBSIZE']), qr/^\+OK\r\n:[1-9]/, 'with the password: the gateway\'s keys are there');

SKIP: {
    skip 'other users can only be tried as root', 2 unless $> == 0;
    my ($uid, $gid) = (getpwnam('daemon'))[2, 3];
    skip 'no user daemon', 2 unless defined $uid;
    for my $sock ("$run/backend.sock", "$run/redis/redis.sock") {
        my $kid = fork // die;
        if ($kid == 0) {
            $) = "$gid $gid"; $( = $gid; $< = $> = $uid;
            POSIX::_exit(3) if $> != $uid;
            my $c = IO::Socket::UNIX->new(Type => SOCK_STREAM, Peer => $sock);
            POSIX::_exit($c ? 0 : $!{EACCES} ? 1 : 2);
        }
        waitpid $kid, 0;
        is($? >> 8, 1, "another local user cannot connect to $sock (EACCES)");
    }
}

# TLS 1.1 is refused
my $old = IO::Socket::SSL->new(PeerAddr => "127.0.0.1:$port{https}", SSL_verify_mode => 0,
                               SSL_version => 'TLSv1_1');
ok !$old, 'TLS 1.1 refused';

kill 'TERM', $pid;
ok wait_for(sub { waitpid($pid, WNOHANG) == $pid }, 20), 'SIGTERM stops the stack';
my @left = grep { $_ != $$ && index(slurp("/proc/$_/cmdline"), $run) >= 0 }
           map { m{/proc/(\d+)$} ? $1 : () } glob '/proc/[0-9]*';
is "@left", '', 'no process left behind';
$pid = 0;

sub slurp { open my $fh, '<', $_[0] or return ''; local $/; my $c = <$fh>; $c // '' }

done_testing;

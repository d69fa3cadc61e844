# Server behaviour: keep-alive and pipelining, slow-client and idle timeouts,
# SIGHUP reload (a good model replaces the old one on open connections; a bad
# one is refused and the old one kept), SIGTERM/SIGINT clean exit, socket
# handling and command-line errors.
use strict;
use warnings;
use Test::More;
use File::Copy qw(copy);
use File::Temp qw(tempdir);
use JSON::PP;
use IO::Socket::INET;
use lib 't/lib';
use MLGuard::Backend;

my $json = JSON::PP->new;
my $dir = tempdir('mlg-server-XXXXXX', TMPDIR => 1, CLEANUP => 1);
my $body = '{"input":[[5.1,3.5,1.4,0.2],[6.7,3.0,5.2,2.3]]}';

# --- keep-alive and pipelining ---
my $b = MLGuard::Backend->start(models => ['conf/models/iris.mlgf'], threads => 2,
                                args => ['--request-timeout', '400', '--idle-timeout', '1500']);
my $c = $b->connect;
my $ok = 0;
for (1 .. 200) {
    my $r = $c->request(POST => '/predict', $body);
    $ok++ if $r->{status} == 200 && $r->{body} eq '{"prediction":[0,2]}'
             && !exists $r->{headers}{connection};
}
is($ok, 200, '200 requests on one keep-alive connection');

$c->send_raw(join '', map { MLGuard::Backend::Connection::format_request(POST => '/predict', $body) }
                      1 .. 20);
$ok = 0;
for (1 .. 20) {
    my $r = $c->read_response;
    $ok++ if $r && $r->{status} == 200;
}
is($ok, 20, '20 pipelined requests answered in order');

# HTTP/1.0 without keep-alive and Connection: close are honoured
my $c10 = $b->connect;
$c10->send_raw("GET /v2/health/live HTTP/1.0\r\n\r\n");
my $r = $c10->read_response;
is($r->{status}, 200, 'HTTP/1.0 request');
ok($c10->wait_closed(5), 'HTTP/1.0 connection closed after the response');
my $cc = $b->connect;
$r = $cc->request(GET => '/v2/health/live', undef, { Connection => 'close' });
is($r->{headers}{connection}, 'close', 'Connection: close echoed');
ok($cc->wait_closed(5), 'and the connection closed');

# --- timeouts ---
my $slow = $b->connect;
$slow->send_raw("POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"in");
$r = $slow->read_response(5);
is($r->{status}, 408, 'slow client: incomplete request -> 408 after --request-timeout');
like($json->decode($r->{body})->{error}, qr/not received within 400 ms/, '408 names the timeout');
ok($slow->wait_closed(5), 'slow client disconnected');

my $slow_head = $b->connect;
$slow_head->send_raw("GET /v2/health/live HTTP/1.1\r\nHo");
$r = $slow_head->read_response(5);
is($r->{status}, 408, 'slow client: incomplete header -> 408');

my $idle = $b->connect;
is($idle->request(GET => '/v2/health/live')->{status}, 200, 'idle connection: first request');
ok($idle->wait_closed(5), 'idle keep-alive connection closed after --idle-timeout');
is($b->stop, 0, 'stopped');

# --- SIGHUP reload ---
my $py = '/usr/bin/python3';
SKIP: {
    skip 'no /usr/bin/python3 with sklearn', 12 unless system($py, '-c', 'import sklearn') == 0;
    # a one-split tree on iris: never predicts class 2
    is(system($py, '-c', <<"PY"), 0, 'trained a stump');
import joblib
from sklearn.datasets import load_iris
from sklearn.tree import DecisionTreeClassifier
X, y = load_iris(return_X_y=True)
joblib.dump(DecisionTreeClassifier(max_depth=1, random_state=0).fit(X, y), "$dir/stump.pkl")
PY
    is(system($py, 'scripts/export-sklearn-model', "$dir/stump.pkl", "$dir/stump.mlgf"), 0, 'exported');
    copy('conf/models/iris.mlgf', "$dir/live.mlgf") or die $!;
    $b = MLGuard::Backend->start(models => ["iris=$dir/live.mlgf"], threads => 2);
    my $keep = $b->connect;
    is($keep->request(POST => '/predict', $body)->{body}, '{"prediction":[0,2]}', 'forest answers');

    copy("$dir/stump.mlgf", "$dir/live.mlgf.tmp") or die $!;
    rename "$dir/live.mlgf.tmp", "$dir/live.mlgf" or die $!;
    $b->signal('HUP');
    ok($b->wait_log(qr/reload done: 0 of 1/), 'SIGHUP: reload logged');
    $r = $keep->request(POST => '/predict', $body);
    is($r->{body}, '{"prediction":[0,1]}', 'new model serves on the connection opened before the reload');
    $r = $b->request(GET => '/v2/models/iris');
    is($json->decode($r->{body})->{parameters}{trees}, 1, 'metadata shows the new model');

    # a corrupt model is refused and the old one stays
    open my $fh, '>', "$dir/live.mlgf.tmp" or die;
    print $fh "MLGF garbage";
    close $fh;
    rename "$dir/live.mlgf.tmp", "$dir/live.mlgf" or die $!;
    $b->signal('HUP');
    ok($b->wait_log(qr/reload done: 1 of 1/), 'SIGHUP with a bad model: reload logged');
    like($b->log, qr/reload: model iris: \S+live\.mlgf: model file truncated.*keeping the old model/,
         'log names the model, the file and the defect');
    is($keep->request(POST => '/predict', $body)->{body}, '{"prediction":[0,1]}',
       'old model still serves after a failed reload');
    unlink "$dir/live.mlgf";
    $b->signal('HUP');
    ok($b->wait_log(qr/reload done: 1 of 1.*\n(?s:.*)reload done: 1 of 1/), 'missing file: reload logged');
    is($keep->request(POST => '/predict', $body)->{status}, 200, 'still serving');

    # --- SIGTERM with an open connection ---
    my $sock = $b->socket_path;
    $b->signal('TERM');
    ok($b->wait_exit(10), 'SIGTERM: exits');
    is($b->exit_status, 0, 'exit status 0');
}
ok(!-e $b->socket_path, 'socket file removed');

# --- SIGINT; the socket is 0660 by default ---
$b = MLGuard::Backend->start(models => ['conf/models/iris.mlgf'], threads => 1);
is((stat $b->socket_path)[2] & 07777, 0660, 'socket is 0660 by default: owner and group only');
is((stat $b->socket_path)[5], (split ' ', $))[0], 'and keeps the backend\'s group without --socket-group');
my $hold = $b->connect;
$b->signal('INT');
ok($b->wait_exit(10), 'SIGINT: exits');
is($b->exit_status, 0, 'exit status 0');
ok($hold->wait_closed(5), 'open connection closed at shutdown');
ok(!-e $b->socket_path, 'socket removed');

# --- --socket-mode and --socket-group ---
{
    # a group the backend may give its socket: any group when root, else its own
    my @gids = split ' ', $);
    my ($gname, $gid) = $> == 0 && defined getgrnam('nogroup') ? ('nogroup', scalar getgrnam('nogroup'))
                                                                : (scalar getgrgid($gids[0]), $gids[0]);
    my $x = MLGuard::Backend->start(models => ['conf/models/iris.mlgf'], threads => 1,
                                    args => ['--socket-mode', '0600']);
    is((stat $x->socket_path)[2] & 07777, 0600, '--socket-mode 0600');
    $x->stop;
    $x = MLGuard::Backend->start(models => ['conf/models/iris.mlgf'], threads => 1,
                                 args => ['--socket-mode', '640', '--socket-group', $gname]);
    my @st = stat $x->socket_path;
    is($st[2] & 07777, 0640, '--socket-mode 640 (octal without the leading 0)');
    is($st[5], $gid, "--socket-group $gname: the socket belongs to that group");
    is($x->request(GET => '/v2/health/ready')->{status}, 200, 'and serves');
    $x->stop;
    $x = MLGuard::Backend->start(models => ['conf/models/iris.mlgf'], threads => 1,
                                 args => ['--socket-group', $gid]);
    @st = stat $x->socket_path;
    is_deeply([$st[2] & 07777, $st[5]], [0660, $gid], "--socket-group $gid (numeric): 0660 and that group");
    $x->stop;
}

# a backend that may not give its socket to the group says so and leaves no socket
SKIP: {
    skip 'needs root to run the backend as another user', 3 unless $> == 0 && -x '/usr/bin/setpriv';
    my ($uid, $gid) = (getpwnam('daemon'))[2, 3];
    skip 'no user daemon', 3 unless defined $uid;
    my $udir = tempdir('mlg-sockgrp-XXXXXX', TMPDIR => 1, CLEANUP => 1);
    chown $uid, $gid, $udir;
    my $out = `/usr/bin/setpriv --reuid=$uid --regid=$gid --clear-groups @{[MLGuard::Backend::binary()]} --model conf/models/iris.mlgf --listen unix:$udir/b.sock --socket-group nogroup 2>&1`;
    isnt($?, 0, 'a user outside --socket-group: error status');
    like($out, qr/--socket-group: cannot give \S+b\.sock to group 65534: Operation not permitted \(the backend must run as root or as a member of the group\)/,
         'and says why') or diag $out;
    ok(!-e "$udir/b.sock", 'no socket left behind');
}

# --- a stale socket file is replaced; a live one is refused ---
my $sdir = tempdir('mlg-sock-XXXXXX', TMPDIR => 1, CLEANUP => 1);
{
    my $stale = IO::Socket::UNIX->new(Type => Socket::SOCK_STREAM(), Local => "$sdir/backend.sock",
                                      Listen => 1) or die $!;
    close $stale;   # file stays, nobody listens
}
ok(-S "$sdir/backend.sock", 'stale socket file present');
$b = MLGuard::Backend->start(models => ['conf/models/iris.mlgf'], threads => 1, dir => $sdir);
is($b->request(GET => '/v2/health/ready')->{status}, 200, 'started over a stale socket');
my $second = MLGuard::Backend->start(models => ['conf/models/iris.mlgf'], dir => $sdir, wait => 0);
ok($second->wait_exit(10), 'second backend on a live socket exits');
isnt($second->exit_status, 0, 'with an error status');
like($second->log, qr/in use by another server/, 'and says why');
is($b->request(GET => '/v2/health/ready')->{status}, 200, 'first backend unaffected');
$b->stop;

# --- TCP for debugging ---
my $probe = IO::Socket::INET->new(Listen => 1, LocalAddr => '127.0.0.1', LocalPort => 0) or die;
my $port = $probe->sockport;
close $probe;
$b = MLGuard::Backend->start(models => ['conf/models/iris.mlgf'], threads => 1,
                             args => ['--listen', "tcp:127.0.0.1:$port"]);
my $tcp = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port) or die "tcp: $!";
print $tcp "GET /v2/health/live HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
my $resp = do { local $/; <$tcp> };
like($resp, qr{^HTTP/1\.1 200 OK\r\n.*\{"live":true\}$}s, '--listen tcp:127.0.0.1:PORT serves too');
$b->stop;

# --- startup errors ---
sub fails {
    my ($name, $re, @args) = @_;
    my $x = MLGuard::Backend->start(models => [], args => \@args, wait => 0);
    ok($x->wait_exit(10), "$name: exits");
    isnt($x->exit_status, 0, "$name: error status");
    like($x->log, $re, "$name: message");
}
fails('no model', qr/need at least one --model/);
fails('missing file', qr/cannot open \S*nope\.mlgf: No such file/, '--model', "$dir/nope.mlgf");
fails('bad option', qr/unknown option --frobnicate/, '--model', 'conf/models/iris.mlgf', '--frobnicate', 1);
fails('bad threads', qr/--threads wants 1\.\.256/, '--model', 'conf/models/iris.mlgf', '--threads', 0);
fails('duplicate name', qr/model name "iris" used twice/,
      '--model', 'conf/models/iris.mlgf', '--model', 'conf/models/iris.mlgf');
fails('bad name', qr/bad model name/, '--model', 'a b=conf/models/iris.mlgf');
for my $mode ('0888', '1777', '04660', 'rw-rw----', '', '0x1b6', '-660', '00000660') {
    fails("--socket-mode '$mode'", qr/bad --socket-mode '\Q$mode\E' \(want an octal mode from 0 to 0777, e\.g\. 0660\)/,
          '--model', 'conf/models/iris.mlgf', '--socket-mode', $mode);
}
fails('unknown group', qr/--socket-group 'no-such-group-mlg': no such group/,
      '--model', 'conf/models/iris.mlgf', '--socket-group', 'no-such-group-mlg');
fails('bad gid', qr/--socket-group '4294967296': no such group/,
      '--model', 'conf/models/iris.mlgf', '--socket-group', '4294967296');
fails('group with a control character', qr/--socket-group 'a\\x0ab': no such group/,
      '--model', 'conf/models/iris.mlgf', '--socket-group', "a\nb");
{
    my $out = `@{[MLGuard::Backend::binary()]} --model conf/models/iris.mlgf --listen tcp:127.0.0.1:1 --socket-mode 0600 2>&1`;
    isnt($?, 0, '--socket-mode with only a TCP listener: error status');
    like($out, qr/--socket-mode and --socket-group apply to --listen unix:PATH, and there is none/, 'and says why');
}

done_testing;

package MLGuard::Backend;

# Starts build/ml-guard-backend on a private Unix socket for a test, and
# speaks HTTP/1.1 to it.
#
#   my $b = MLGuard::Backend->start(models => ['conf/models/iris.mlgf'],
#                                   threads => 2);
#   my $r = $b->request(POST => '/predict', '{"input":[5.1,3.5,1.4,0.2]}');
#   # $r = { status => 200, headers => { 'content-type' => ... }, body => '...' }
#   my $c = $b->connect;              # one keep-alive connection
#   $c->request(GET => '/v2/health/ready');
#   $b->socket_path; $b->pid; $b->log; $b->signal('HUP'); $b->stop;
#
# start() returns once GET /v2/health/ready answers 200 (or dies with the
# backend's log).  Every backend still running is stopped when the test
# exits, also after a die.

use strict;
use warnings;
use Carp qw(croak);
use File::Basename qw(dirname);
use File::Spec;
use File::Temp qw(tempdir);
use IO::Socket::UNIX;
use POSIX qw(WNOHANG);
use Socket qw(SOCK_STREAM);
use Time::HiRes qw(time sleep);

my %running;    # pid => backend

sub root {
    return File::Spec->rel2abs(File::Spec->catdir(dirname(__FILE__), '..', '..', '..'));
}

sub binary {
    return $ENV{MLG_BACKEND} || File::Spec->catfile(root(), 'build', 'ml-guard-backend');
}

# Options: models => [ 'FILE' | 'NAME=FILE', ... ] (required), threads => N,
# model_key => FILE, args => [ extra command-line arguments ],
# dir => directory for the socket and log (default: a private temp dir),
# timeout => seconds to wait for readiness (default 10), wait => 0 to skip it.
sub start {
    my ($class, %opt) = @_;
    my $models = $opt{models} or croak 'start: models => [...] is required';
    my $dir = $opt{dir} || tempdir('mlg-backend-XXXXXX', TMPDIR => 1, CLEANUP => 1);
    my $self = bless {
        dir         => $dir,
        socket_path => "$dir/backend.sock",
        log_path    => "$dir/backend.log",
    }, $class;
    my @cmd = (binary(), (map { ('--model', $_) } @$models),
               '--listen', "unix:$self->{socket_path}");
    push @cmd, '--threads', $opt{threads} if $opt{threads};
    push @cmd, '--model-key', $opt{model_key} if $opt{model_key};
    push @cmd, @{ $opt{args} } if $opt{args};
    croak "start: $cmd[0] is not built (run scripts/setup)" unless -x $cmd[0];
    $self->{cmd} = \@cmd;

    my $pid = fork // croak "fork: $!";
    if ($pid == 0) {
        # die with the test even if it is killed (prctl PR_SET_PDEATHSIG, x86-64 Linux)
        eval { syscall(157, 1, 15) } if $^O eq 'linux';
        open STDIN, '<', '/dev/null';
        open STDOUT, '>>', $self->{log_path} or POSIX::_exit(126);
        open STDERR, '>&', \*STDOUT or POSIX::_exit(126);
        exec { $cmd[0] } @cmd or POSIX::_exit(127);
    }
    $self->{pid} = $pid;
    $running{$pid} = $self;
    $self->wait_ready($opt{timeout} // 10) unless defined $opt{wait} && !$opt{wait};
    return $self;
}

sub pid         { $_[0]{pid} }
sub socket_path { $_[0]{socket_path} }
sub dir         { $_[0]{dir} }
sub log_path    { $_[0]{log_path} }

sub log {
    my ($self) = @_;
    open my $fh, '<', $self->{log_path} or return '';
    local $/;
    return scalar <$fh>;
}

# Polls until $cond->() is true or the deadline passes; returns the last value.
sub wait_for {
    my ($cond, $timeout) = @_;
    my $deadline = time + ($timeout // 10);
    while (1) {
        my $v = $cond->();
        return $v if $v || time > $deadline;
        sleep 0.01;
    }
}

# Waits until the log matches $re (e.g. after a signal); returns true if it did.
sub wait_log {
    my ($self, $re, $timeout) = @_;
    return wait_for(sub { $self->log =~ $re }, $timeout);
}

# True once the process has exited; sets $self->{exit_status} (as in $?).
sub exited {
    my ($self) = @_;
    return 1 if defined $self->{exit_status};
    my $r = waitpid($self->{pid}, WNOHANG);
    if ($r == $self->{pid}) {
        $self->{exit_status} = $?;
        delete $running{ $self->{pid} };
        return 1;
    }
    return 0;
}

sub exit_status { $_[0]{exit_status} }

sub wait_exit {
    my ($self, $timeout) = @_;
    return wait_for(sub { $self->exited }, $timeout);
}

sub wait_ready {
    my ($self, $timeout) = @_;
    my $ok = wait_for(sub {
        croak "backend exited during startup:\n" . $self->log if $self->exited;
        my $r = eval { $self->request(GET => '/v2/health/ready') };
        return $r && $r->{status} == 200;
    }, $timeout);
    croak "backend not ready within ${timeout}s:\n" . $self->log unless $ok;
    return 1;
}

sub signal {
    my ($self, $sig) = @_;
    kill $sig, $self->{pid};
}

# SIGTERM, then waits (SIGKILL after the timeout).  Returns the exit status.
sub stop {
    my ($self, $timeout) = @_;
    return $self->{exit_status} if $self->exited;
    kill 'TERM', $self->{pid};
    unless ($self->wait_exit($timeout // 10)) {
        kill 'KILL', $self->{pid};
        $self->wait_exit(5);
    }
    return $self->{exit_status};
}

sub connect {
    my ($self) = @_;
    return MLGuard::Backend::Connection->new($self->{socket_path});
}

# One request on a fresh connection.
sub request {
    my ($self, $method, $path, $body, $headers) = @_;
    my $c = $self->connect;
    my $r = $c->request($method, $path, $body, $headers);
    $c->close;
    return $r;
}

END {
    my $status = $?;
    for my $b (values %running) {
        kill 'TERM', $b->{pid};
    }
    for my $b (values %running) {
        kill 'KILL', $b->{pid} unless $b->wait_exit(5);
        waitpid($b->{pid}, 0);
    }
    $? = $status;
}

package MLGuard::Backend::Connection;

use strict;
use warnings;
use Carp qw(croak);
use IO::Select;
use IO::Socket::UNIX;
use Socket qw(SOCK_STREAM);
use Time::HiRes qw(time);

sub new {
    my ($class, $path) = @_;
    my $sock = IO::Socket::UNIX->new(Type => SOCK_STREAM, Peer => $path)
        or croak "connect $path: $!";
    $sock->autoflush(1);
    $SIG{PIPE} = 'IGNORE';    # a server that closed early must not kill the test
    return bless { sock => $sock, buf => '', timeout => 10 }, $class;
}

sub socket { $_[0]{sock} }
sub close  { my $s = $_[0]{sock}; close $s if $s; }

# Sends raw bytes (for malformed or slow requests).
sub send_raw {
    my ($self, $data) = @_;
    my $off = 0;
    while ($off < length $data) {
        my $n = syswrite($self->{sock}, $data, length($data) - $off, $off);
        croak "write: $!" unless defined $n;
        $off += $n;
    }
}

sub format_request {
    my ($method, $path, $body, $headers) = @_;
    my $req = "$method $path HTTP/1.1\r\nHost: backend\r\n";
    my %h = %{ $headers || {} };
    if (defined $body) {
        $h{'Content-Type'} //= 'application/json';
        $h{'Content-Length'} //= length $body;
    }
    $req .= "$_: $h{$_}\r\n" for sort keys %h;
    return $req . "\r\n" . ($body // '');
}

sub request {
    my ($self, $method, $path, $body, $headers) = @_;
    $self->send_raw(format_request($method, $path, $body, $headers));
    return $self->read_response;
}

# Reads more into the buffer: bytes read, 0 at EOF, -1 on timeout,
# undef on a socket error (e.g. reset by the server).
sub _fill {
    my ($self, $deadline) = @_;
    my $left = $deadline - time;
    return -1 if $left <= 0 || !IO::Select->new($self->{sock})->can_read($left);
    return sysread($self->{sock}, $self->{buf}, 65536, length $self->{buf});
}

# Reads one response; returns undef if the server closed the connection
# before sending one.  {status, headers (lower-case names), body}.
sub read_response {
    my ($self, $timeout) = @_;
    my $deadline = time + ($timeout // $self->{timeout});
    while ($self->{buf} !~ /\r\n\r\n/) {
        my $n = $self->_fill($deadline);
        croak "no response within the timeout" if defined $n && $n < 0;
        return undef if !$n && $self->{buf} eq '';
        croak "incomplete response head: $self->{buf}" unless $n;
    }
    $self->{buf} =~ s/\A(.*?)\r\n\r\n//s;
    my ($status_line, @lines) = split /\r\n/, $1;
    my ($status) = $status_line =~ m{^HTTP/1\.[01] (\d{3})} or croak "bad status line $status_line";
    my %h;
    for (@lines) {
        my ($k, $v) = /^([^:]+):\s*(.*)$/ or next;
        $h{ lc $k } = $v;
    }
    return $self->read_response($timeout) if $status == 100;
    my $len = $h{'content-length'} // 0;
    while (length $self->{buf} < $len) {
        my $n = $self->_fill($deadline);
        croak "incomplete response body" unless $n && $n > 0;
    }
    my $body = substr($self->{buf}, 0, $len, '');
    return { status => $status + 0, headers => \%h, body => $body };
}

# Waits until the unread input matches $re; returns true if it did.
sub read_until {
    my ($self, $re, $timeout) = @_;
    my $deadline = time + ($timeout // 5);
    while ($self->{buf} !~ $re) {
        my $n = $self->_fill($deadline);
        return 0 unless $n && $n > 0;
    }
    return 1;
}

# True once the server has closed the connection (EOF or reset) within the
# timeout; bytes arriving first are kept in the buffer.
sub wait_closed {
    my ($self, $timeout) = @_;
    my $deadline = time + ($timeout // 5);
    while (1) {
        my $n = $self->_fill($deadline);
        return 1 if !defined $n || $n == 0;
        return 0 if $n < 0;
    }
}

1;

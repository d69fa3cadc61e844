package MLGuard::RESP;

# A tiny Redis (RESP2) client and a private redis-server for tests that talk
# to Redis directly (the rate-limit script tests).  No CPAN modules needed.
#
#   my $srv = MLGuard::RESP::start_server();          # temp dir, unix socket
#   my $r   = MLGuard::RESP->connect($srv->{socket});
#   my $v   = $r->cmd('SET', 'k', 'v');   # 'OK'; errors come back as
#                                          # { error => 'ERR ...' }
#   MLGuard::RESP::stop_server($srv);

use strict;
use warnings;
use IO::Socket::UNIX;
use IO::Socket::INET;
use File::Temp qw(tempdir);
use Socket qw(SOCK_STREAM);
use Time::HiRes qw(time sleep);
use POSIX qw(WNOHANG);

sub connect {
    my ($class, $where, %opt) = @_;
    my $sock;
    if ($where =~ m{^/}) {
        $sock = IO::Socket::UNIX->new(Type => SOCK_STREAM, Peer => $where);
    } else {
        $sock = IO::Socket::INET->new(PeerAddr => $where, Proto => 'tcp');
    }
    return undef unless $sock;
    $sock->autoflush(1);
    my $self = bless { sock => $sock, buf => '' }, $class;
    return $self;
}

sub encode {
    my @args = @_;
    my $s = '*' . scalar(@args) . "\r\n";
    for my $arg (@args) {
        my $v = defined $arg ? "$arg" : '';
        $s .= '$' . length($v) . "\r\n$v\r\n";
    }
    return $s;
}

sub send_raw {
    my ($self, $data) = @_;
    my $off = 0;
    while ($off < length $data) {
        my $n = syswrite($self->{sock}, $data, length($data) - $off, $off);
        die "redis write: $!" unless defined $n;
        $off += $n;
    }
}

sub _fill {
    my ($self) = @_;
    my $n = sysread($self->{sock}, $self->{buf}, 65536, length $self->{buf});
    die "redis read: " . (defined $n ? 'connection closed' : $!) unless $n;
}

sub _line {
    my ($self) = @_;
    while ((my $i = index($self->{buf}, "\r\n")) < 0) { $self->_fill }
    my $i = index($self->{buf}, "\r\n");
    my $line = substr($self->{buf}, 0, $i);
    substr($self->{buf}, 0, $i + 2) = '';
    return $line;
}

sub read_reply {
    my ($self) = @_;
    my $line = $self->_line;
    my ($t, $rest) = (substr($line, 0, 1), substr($line, 1));
    return $rest if $t eq '+';
    return { error => $rest } if $t eq '-';
    return 0 + $rest if $t eq ':';
    if ($t eq '$') {
        return undef if $rest < 0;
        $self->_fill while length($self->{buf}) < $rest + 2;
        my $s = substr($self->{buf}, 0, $rest);
        substr($self->{buf}, 0, $rest + 2) = '';
        return $s;
    }
    if ($t eq '*') {
        return undef if $rest < 0;
        return [ map { $self->read_reply } 1 .. $rest ];
    }
    die "redis: bad reply line '$line'";
}

sub cmd {
    my ($self, @args) = @_;
    $self->send_raw(encode(@args));
    return $self->read_reply;
}

sub close { my ($self) = @_; close $self->{sock} if $self->{sock}; delete $self->{sock}; }

# Starts redis-server on a unix socket (and optionally a TCP port) in a temp
# dir; waits until it answers PING.  Extra args go to redis-server.
sub start_server {
    my (%opt) = @_;
    my $dir = $opt{dir} || tempdir('mlg-redis-XXXXXX', TMPDIR => 1, CLEANUP => 1);
    my $sock = "$dir/redis.sock";
    my @cmd = ('redis-server', '--port', ($opt{port} || 0), '--bind', '127.0.0.1',
        '--unixsocket', $sock, '--unixsocketperm', '777', '--save', '',
        '--appendonly', 'no', '--dir', $dir, '--logfile', "$dir/redis.log",
        @{ $opt{args} || [] });
    my $pid = fork() // die "fork: $!";
    if ($pid == 0) {
        open STDOUT, '>', '/dev/null';
        exec @cmd or POSIX::_exit(127);
    }
    my $srv = { pid => $pid, socket => $sock, dir => $dir, port => $opt{port},
                args => $opt{args} || [] };
    my $deadline = time + 10;
    while (time < $deadline) {
        if (-S $sock) {
            my $r = MLGuard::RESP->connect($sock);
            if ($r) {
                my $pong = eval { $r->cmd('PING') };
                if (defined $pong && (!ref $pong || $pong->{error} =~ /NOAUTH/)) {
                    $r->close;
                    return $srv;
                }
            }
        }
        if (waitpid($pid, WNOHANG) == $pid) {
            die "redis-server exited: " . slurp("$dir/redis.log");
        }
        sleep 0.01;
    }
    kill 'KILL', $pid;
    die "redis-server did not answer PING within 10 s";
}

# Starts the same server again (same socket/dir/port) after stop_server.
sub restart_server {
    my ($srv) = @_;
    my $new = start_server(dir => $srv->{dir}, port => $srv->{port},
                           args => $srv->{args});
    %$srv = %$new;
    return $srv;
}

sub stop_server {
    my ($srv, $signal) = @_;
    return unless $srv && $srv->{pid};
    kill 'CONT', $srv->{pid};
    kill($signal || 'TERM', $srv->{pid});
    waitpid($srv->{pid}, 0);
    delete $srv->{pid};
}

sub slurp {
    my ($f) = @_;
    open my $fh, '<', $f or return '';
    local $/;
    return scalar <$fh>;
}

1;

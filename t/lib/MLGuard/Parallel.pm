package MLGuard::Parallel;

# Many HTTP/1.0 requests in flight at once from one process (non-blocking
# sockets + select), for exactness tests under concurrency.
#
#   my @res = MLGuard::Parallel::requests(
#       [ map { { port => $p, path => '/a', headers => {...} } } 1 .. 200 ],
#       timeout => 20);
#   # each: { status => 200, headers => {lc name => value}, body => '...' }
#
# All connections are opened and all requests written before any response
# is read, so the server sees them concurrently.

use strict;
use warnings;
use IO::Socket::INET;
use IO::Select;
use Time::HiRes qw(time);

sub requests {
    my ($reqs, %opt) = @_;
    my $timeout = $opt{timeout} // 20;
    my (@conns, %by_fd);
    for my $i (0 .. $#$reqs) {
        my $q = $reqs->[$i];
        my $s = IO::Socket::INET->new(PeerAddr => $q->{host} // '127.0.0.1',
                                      PeerPort => $q->{port}, Proto => 'tcp',
                                      Timeout => 5)
            or die "connect: $!";
        binmode $s;
        my $hdr = join '', map { "$_: $q->{headers}{$_}\r\n" } sort keys %{ $q->{headers} || {} };
        my $body = $q->{body} // '';
        my $msg = ($q->{method} // 'GET') . " $q->{path} HTTP/1.0\r\nHost: localhost\r\n$hdr"
            . (length $body ? 'Content-Length: ' . length($body) . "\r\n" : '') . "\r\n$body";
        push @conns, { sock => $s, out => $msg, in => '', i => $i };
    }
    # write everything first
    for my $c (@conns) {
        my $off = 0;
        while ($off < length $c->{out}) {
            my $n = syswrite($c->{sock}, $c->{out}, length($c->{out}) - $off, $off);
            die "write: $!" unless defined $n;
            $off += $n;
        }
    }
    my $sel = IO::Select->new(map { $_->{sock} } @conns);
    $by_fd{ fileno $_->{sock} } = $_ for @conns;
    my $deadline = time + $timeout;
    while ($sel->count && time < $deadline) {
        for my $s ($sel->can_read($deadline - time)) {
            my $c = $by_fd{ fileno $s };
            my $n = sysread($s, my $buf, 65536);
            if ($n) { $c->{in} .= $buf; next }
            $sel->remove($s);
            close $s;
        }
    }
    my @res;
    for my $c (@conns) {
        my %r = (status => 0, headers => {}, body => '');
        if ($c->{in} =~ /\A(.*?)\r\n\r\n(.*)\z/s) {
            my ($head, $body) = ($1, $2);
            my ($line, @h) = split /\r\n/, $head;
            ($r{status}) = $line =~ m{^HTTP/\d\.\d (\d{3})};
            for (@h) {
                my ($k, $v) = split /:\s*/, $_, 2;
                $r{headers}{lc $k} = $v;
            }
            $r{body} = $body;
        }
        $res[$c->{i}] = \%r;
    }
    return @res;
}

1;

# The local zone (no Redis, or fail=local) when full: as limit_req, the
# least recently used key is evicted to make room, but a live ban never is
# (flooding the zone with new keys must not lift a ban); when nothing can
# be evicted the request is refused (503 limiter_unavailable) and "could not
# allocate node" is logged, never dropped silently.  Many client addresses
# come from 127.0.0.0/8.
use strict;
use warnings;
use Test::More;
use IO::Socket::INET;
use lib 't/lib';
use MLGuard::Test qw(sha256_hex_of random_key);

my $good = random_key();

my $t = MLGuard::Test->new(workers => 1);
$t->write_file('keys.txt', 'svc ' . sha256_hex_of($good) . " predict\n");
$t->start_echo;
$t->start_nginx(
    http => 'ml_guard_limits_zone 32k;',
    server => q{
        location /fill {
            ml_guard on; ml_guard_auth none;
            ml_guard_rate_limit 1r/m key=$http_x_k;
            proxy_pass http://%%ECHO%%;
        }
        location /a {
            ml_guard on;
            ml_guard_api_keys %%DIR%%/keys.txt;
            ml_guard_auth_failures 1r/m ban=1h;
            proxy_pass http://%%ECHO%%;
        }
    });

# one HTTP/1.0 request from a given local address; returns the status
sub get_from {
    my ($from, $path, %h) = @_;
    my $s = IO::Socket::INET->new(LocalAddr => $from, PeerAddr => '127.0.0.1',
                                  PeerPort => $t->port, Proto => 'tcp', Timeout => 5)
        or die "connect from $from: $!";
    print $s "GET $path HTTP/1.0\r\nHost: localhost\r\n"
        . join('', map { "$_: $h{$_}\r\n" } sort keys %h) . "\r\n";
    local $/;
    my $resp = <$s> // '';
    close $s;
    return $resp =~ m{^HTTP/1\.\d (\d+)} ? $1 : 0;
}

my $bad = sub { ('X-API-Key' => 'guess-' . random_key(8)) };

# 127.0.0.1 is banned: 1 failure tolerated, the 2nd bans
is_deeply([ map { get_from('127.0.0.1', '/a', $bad->()) } 1 .. 2 ], [ 401, 401 ], 'two failures');
is(get_from('127.0.0.1', '/a', 'X-API-Key' => $good), 429, 'banned');

# the zone overflows with limit keys: the oldest is evicted, as limit_req
is(get_from('127.0.0.1', '/fill', 'X-K' => 'first'), 200, 'first key: allowed');
is(get_from('127.0.0.1', '/fill', 'X-K' => 'first'), 429, 'first key: then limited');
my @fill = map { get_from('127.0.0.1', '/fill', 'X-K' => "k$_") } 1 .. 400;
is(scalar(grep { $_ != 200 } @fill), 0, '400 new keys in a 32k zone: all allowed (older keys evicted)');
is(get_from('127.0.0.1', '/fill', 'X-K' => 'first'), 200, 'the least recently used key was evicted');
is(get_from('127.0.0.1', '/a', 'X-API-Key' => $good), 429, 'the ban survived the flood');
unlike($t->read_file('logs/error.log'), qr/could not allocate/, 'evicting is not an error');

# bans from many addresses fill the zone: nothing can be evicted, so a new
# client is refused and it is logged
my ($refused, $banned) = (0, 0);
for my $i (2 .. 250) {
    my $from = "127.0.1.$i";
    my @st = map { get_from($from, '/a', $bad->()) } 1 .. 2;
    if (grep { $_ == 503 } @st) { $refused = $i; last }
    $banned++;
}
ok($refused, "the zone full of bans ($banned addresses): a new client's failure is refused (503)");
like($t->read_file('logs/error.log'), qr/could not allocate node in the "ml_guard_ratelimit" zone/,
     'and logged');
is(get_from('127.0.0.1', '/a', 'X-API-Key' => $good), 429, 'the first ban still holds');

$t->stop;

{
    my $u = MLGuard::Test->new;
    for my $bad ([ '1k', qr/"ml_guard_limits_zone" directive is too small/ ],
                 [ 'lots', qr/"ml_guard_limits_zone" directive invalid value/ ]) {
        my ($ok, $out) = $u->nginx_test(http => "ml_guard_limits_zone $bad->[0];");
        ok(!$ok && $out =~ $bad->[1], "ml_guard_limits_zone $bad->[0] refused") or diag $out;
    }
}

done_testing();

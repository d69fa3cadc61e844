# Body caps: Content-Length and chunked, memory- and file-buffered bodies.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Digest::SHA qw(sha256_hex);
use MLGuard::Test qw(sha256_hex_of random_key wait_for);

my $t = MLGuard::Test->new;
my $key = random_key();
$t->write_file('keys.txt', "alice " . sha256_hex_of($key) . " predict\n");
$t->start_echo;
$t->start_nginx(server => q{
    ml_guard_api_keys %%DIR%%/keys.txt;

    location /small {
        ml_guard on;
        ml_guard_max_body 100;
        proxy_pass http://%%ECHO%%;
    }
    location /file {
        ml_guard on;
        ml_guard_max_body 2m;
        client_max_body_size 2m;
        client_body_buffer_size 1k;
        proxy_pass http://%%ECHO%%;
    }
    location /default {
        ml_guard on;
        proxy_pass http://%%ECHO%%;
    }
    location /nginx-cap {
        ml_guard on;
        ml_guard_max_body 10m;
        client_max_body_size 1k;
        proxy_pass http://%%ECHO%%;
    }
    location /off {
        ml_guard off;
        ml_guard_max_body 10;
        proxy_pass http://%%ECHO%%;
    }
});

my $auth = "X-API-Key: $key\r\n";

sub chunked {
    my (@parts) = @_;
    return join('', map { sprintf("%x\r\n%s\r\n", length $_, $_) } @parts) . "0\r\n\r\n";
}

sub problem_413 {
    my ($r, $name) = @_;
    subtest $name => sub {
        is $r->{status}, 413, 'status 413';
        is $r->{json}{reason}, 'body_too_large', 'reason body_too_large';
        like $r->{headers}{'content-type'}, qr{application/problem\+json}, 'problem+json';
    };
}

# Content-Length
my $r = $t->request(POST => '/small', headers => {'X-API-Key' => $key}, body => 'a' x 100);
is $r->{status}, 200, 'body exactly at the cap passes';
is $r->{content}, 'a' x 100, 'and reaches the upstream unchanged';

$r = $t->request(POST => '/small', headers => {'X-API-Key' => $key}, body => 'a' x 101);
problem_413($r, 'one byte over the cap: 413');
like $r->{json}{detail}, qr/100 bytes/, 'detail names the limit';

# a Content-Length over the cap is refused before the body is sent
$r = $t->raw_request("POST /small HTTP/1.1\r\nHost: x\r\n${auth}Content-Length: 1000000000\r\n\r\n",
                     timeout => 5);
problem_413($r, 'huge Content-Length refused at once, without reading the body');

# chunked, under and over the cap
my $payload = join '', map { chr(32 + $_ % 90) } 1 .. 90;
$r = $t->raw_request("POST /small HTTP/1.1\r\nHost: x\r\n${auth}Transfer-Encoding: chunked\r\n"
                     . "Connection: close\r\n\r\n" . chunked(substr($payload, 0, 40), substr($payload, 40)));
is $r->{status}, 200, 'chunked body under the cap passes';
is $r->{body}, $payload, 'chunked body reaches upstream unchanged';
is $r->{headers}{'x-echo-length'}, 90, 'upstream got the de-chunked length';

$r = $t->raw_request("POST /small HTTP/1.1\r\nHost: x\r\n${auth}Transfer-Encoding: chunked\r\n\r\n"
                     . chunked('x' x 60, 'y' x 60));
problem_413($r, 'chunked body over the cap, sent at once: 413');

# chunked, arriving in pieces: the cap applies while reading
$r = $t->raw_request(["POST /small HTTP/1.1\r\nHost: x\r\n${auth}Transfer-Encoding: chunked\r\n\r\n",
                      sprintf("%x\r\n%s\r\n", 60, 'x' x 60),
                      sprintf("%x\r\n%s\r\n", 60, 'y' x 60)]);
problem_413($r, 'chunked body growing past the cap while read: 413');

# an endless chunked stream is cut off: we stop reading at the cap
{
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $t->port, Proto => 'tcp')
        or die $!;
    local $SIG{PIPE} = 'IGNORE';
    syswrite $s, "POST /small HTTP/1.1\r\nHost: x\r\n${auth}Transfer-Encoding: chunked\r\n\r\n";
    my $sent = 0;
    for (1 .. 50) {
        last unless defined syswrite $s, sprintf("%x\r\n%s\r\n", 20, 'z' x 20);
        $sent++;
        last if $sent > 6 && IO::Select->new($s)->can_read(0.05);
    }
    my $res = MLGuard::Test::read_response($s, 5);
    problem_413($res, 'endless chunked stream answered with 413 before it ends');
}

# clients that go away in the middle of a body: no request is leaked (the
# harness fails the file on nginx's "open socket left" alert)
for my $te (1, 0) {
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $t->port, Proto => 'tcp') or die $!;
    syswrite $s, "POST /file HTTP/1.1\r\nHost: x\r\n${auth}"
        . ($te ? "Transfer-Encoding: chunked\r\n\r\n10\r\n0123456789abcdef\r\n"
               : "Content-Length: 50000\r\n\r\n" . ('p' x 20000));
    # one worker serves both connections in order: once a later request is
    # answered, the first one is waiting for the rest of its body
    is $t->request(GET => '/small', headers => {'X-API-Key' => $key})->{status}, 200,
       ($te ? 'chunked' : 'Content-Length') . ' body half sent; other requests still served';
    close $s;
}
$r = $t->request(POST => '/small', headers => {'X-API-Key' => $key}, body => 'after');
is $r->{status}, 200, 'the server is fine after clients vanished mid-body';

# file-buffered bodies (client_body_buffer_size 1k) reach the upstream intact
my $big = join '', map { chr(rand 256) } 1 .. 300_000;
$r = $t->request(POST => '/file', headers => {'X-API-Key' => $key}, body => $big);
is $r->{status}, 200, '300 KB body buffered to a file passes';
is sha256_hex($r->{content}), sha256_hex($big), 'and reaches the upstream byte for byte';

$r = $t->raw_request("POST /file HTTP/1.1\r\nHost: x\r\n${auth}Transfer-Encoding: chunked\r\n"
                     . "Connection: close\r\n\r\n" . chunked(map { substr($big, $_ * 30000, 30000) } 0 .. 9));
is $r->{status}, 200, 'chunked 300 KB body buffered to a file passes';
is sha256_hex($r->{body}), sha256_hex($big), 'chunked file body unchanged';

my $huge = 'q' x (2 * 1024 * 1024 + 1);
$r = $t->raw_request(["POST /file HTTP/1.1\r\nHost: x\r\n${auth}Transfer-Encoding: chunked\r\n\r\n",
                      map { sprintf("%x\r\n%s\r\n", 65536, 'q' x 65536) } 1 .. 40]);
problem_413($r, 'file-buffered chunked body over 2m: 413');

# the default cap is 1m
$r = $t->raw_request("POST /default HTTP/1.1\r\nHost: x\r\n${auth}Content-Length: " . (1024 * 1024 + 1)
                     . "\r\n\r\n");
problem_413($r, 'default cap of 1m');
$r = $t->request(POST => '/default', headers => {'X-API-Key' => $key}, body => 'd' x (1024 * 1024));
is $r->{status}, 200, '1m body passes the default cap';

# nginx's own client_max_body_size answers in our format in a guarded location
$r = $t->request(POST => '/nginx-cap', headers => {'X-API-Key' => $key}, body => 'n' x 2000);
problem_413($r, "nginx's client_max_body_size 413 is problem+json too");

# authentication comes first: an unauthenticated client never gets its body read
$r = $t->raw_request("POST /small HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n", timeout => 5);
is $r->{status}, 401, 'unauthenticated oversized request gets 401, not 413';
is $r->{json}{reason}, 'missing_credentials', 'reason missing_credentials';

# no body at all
$r = $t->request(GET => '/small', headers => {'X-API-Key' => $key});
is $r->{status}, 200, 'GET without a body passes';

# ml_guard off: the module's cap does not apply
$r = $t->request(POST => '/off', body => 'o' x 500);
is $r->{status}, 200, 'ml_guard off ignores ml_guard_max_body';

# keep-alive: a request after a passing one on the same connection works
{
    my $req = "POST /small HTTP/1.1\r\nHost: x\r\n${auth}Content-Length: 5\r\n\r\nhello";
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $t->port, Proto => 'tcp') or die;
    syswrite $s, $req;
    my $a = MLGuard::Test::read_response($s, 5);
    syswrite $s, $req;
    my $b = MLGuard::Test::read_response($s, 5);
    is "$a->{status} $b->{status}", '200 200', 'two requests on one keep-alive connection';
    is $b->{body}, 'hello', 'second body intact';
}

$t->stop;
done_testing;

# ml-guard in one location with auth_request, which runs after it in the
# access phase and waits for its subrequest.  ml-guard reads the body first;
# the phases must go on from there so that auth_request is resumed when its
# subrequest completes: with a body that arrives after the headers, with one
# that arrives with them, and with none; both verdicts of the subrequest.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use MLGuard::Test qw(sha256_hex_of random_key);

my $t = MLGuard::Test->new;
my $key = random_key();
$t->write_file('keys.txt', 'svc ' . sha256_hex_of($key) . " predict\n");
$t->write_file('schema.json', '{"type":"object","required":["input"]}');
$t->start_echo;
$t->start_nginx(server => q{
    client_body_buffer_size 1m;
    location /yes/ {
        ml_guard on; ml_guard_api_keys %%DIR%%/keys.txt; ml_guard_schema %%DIR%%/schema.json;
        auth_request /auth-yes;
        proxy_pass http://%%ECHO%%;
    }
    location /no/ {
        ml_guard on; ml_guard_api_keys %%DIR%%/keys.txt; ml_guard_schema %%DIR%%/schema.json;
        auth_request /auth-no;
        proxy_pass http://%%ECHO%%;
    }
    location /plain-yes/ { ml_guard on; ml_guard_api_keys %%DIR%%/keys.txt;
                           auth_request /auth-yes; proxy_pass http://%%ECHO%%; }
    location /plain-no/  { ml_guard on; ml_guard_api_keys %%DIR%%/keys.txt;
                           auth_request /auth-no; proxy_pass http://%%ECHO%%; }
    # the subrequests go to the upstream, so auth_request really waits
    location = /auth-yes { internal; proxy_pass_request_body off; proxy_set_header Content-Length "";
                           proxy_pass http://%%ECHO%%/verdict; }
    location = /auth-no  { internal; proxy_pass_request_body off; proxy_set_header Content-Length "";
                           proxy_set_header X-Echo-Accel /forbidden; proxy_pass http://%%ECHO%%/verdict; }
    location = /forbidden { internal; return 403; }
});

my $big = '{"input":"' . ('x' x 200_000) . '"}';
my $small = '{"input":1}';

sub raw_post {
    my ($path, $body, %opt) = @_;
    my $head = "POST $path HTTP/1.1\r\nHost: localhost\r\nX-API-Key: "
             . ($opt{key} // $key) . "\r\nContent-Type: application/json\r\n"
             . "Content-Length: " . length($body) . "\r\nConnection: close\r\n\r\n";
    # headers first, the body in later writes: nginx reads it asynchronously
    my @parts = $opt{together} ? ($head . $body) : ($head, substr($body, 0, 1000), substr($body, 1000));
    return $t->raw_request(\@parts, timeout => 10);
}

for my $case ([ 'a large body after the headers', $big, 0 ],
              [ 'a small body with the headers', $small, 1 ]) {
    my ($name, $body, $together) = @$case;
    my $res = raw_post('/yes/p', $body, together => $together);
    is $res->{status}, 200, "$name, subrequest allows: 200";
    is $res->{headers}{'x-echo-length'}, length($body), "$name: the whole body reaches the upstream";

    $res = raw_post('/no/p', $body, together => $together);
    is $res->{status}, 403, "$name, subrequest refuses: 403";

    $res = raw_post('/yes/p', '{"other":1}' . (' ' x length($body)), together => $together);
    is $res->{status}, 422, "$name, schema violation: ml-guard refuses before auth_request";

    $res = raw_post('/yes/p', $body, together => $together, key => 'wrong');
    is $res->{status}, 401, "$name, wrong key: 401";
}

is $t->request(GET => '/plain-yes/g', headers => { 'X-API-Key' => $key })->{status}, 200, 'no body, allowed: 200';
is $t->request(GET => '/plain-no/g', headers => { 'X-API-Key' => $key })->{status}, 403, 'no body, refused: 403';

$t->stop;

# the same over HTTP/2 (h2c), where nginx reads the body from DATA frames
my $h2 = MLGuard::Test->new;
$h2->write_file('keys.txt', 'svc ' . sha256_hex_of($key) . " predict\n");
my $file = $h2->write_file('body.json', $big);
$h2->start_echo;
$h2->start_nginx(listen => 'http2', server => q{
    location /yes/ { ml_guard on; ml_guard_api_keys %%DIR%%/keys.txt; auth_request /auth-yes;
                     proxy_pass http://%%ECHO%%; }
    location /no/  { ml_guard on; ml_guard_api_keys %%DIR%%/keys.txt; auth_request /auth-no;
                     proxy_pass http://%%ECHO%%; }
    location = /auth-yes { internal; proxy_pass_request_body off; proxy_set_header Content-Length "";
                           proxy_pass http://%%ECHO%%/verdict; }
    location = /auth-no  { internal; return 403; }
});
for my $case ([ '/yes/h2', '200 2' ], [ '/no/h2', '403 2' ]) {
    my ($path, $want) = @$case;
    my $cmd = join ' ', 'curl -s -m 10 --http2-prior-knowledge -o /dev/null',
        "-w '%{http_code} %{http_version}'", "-H 'X-API-Key: $key'",
        "-H 'Content-Type: application/json'", "--data-binary \@$file",
        'http://127.0.0.1:' . $h2->port . $path;
    my $got = `$cmd`;
    is $got, $want, "HTTP/2, a large body, $path: $want";
}
$h2->stop;

done_testing;

package MLGuard::Post;

# post_json($t, $path, $body): a POST with Content-Type application/json,
# written in one piece on a fresh connection (no Nagle/delayed-ACK stall
# between headers and body), for tests that send many requests.  Returns
# MLGuard::Test::raw_request's result with ->{content} set to the body.

use strict;
use warnings;
use Exporter qw(import);

our @EXPORT_OK = qw(post_json);

sub post_json {
    my ($t, $path, $body) = @_;
    my $r = $t->raw_request("POST $path HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
        . "Content-Type: application/json\r\nContent-Length: " . length($body) . "\r\n\r\n" . $body);
    $r->{content} = $r->{body};
    return $r;
}

1;

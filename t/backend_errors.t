# Bad requests get 400/404/413 with {"error": "..."} naming the problem, and
# never crash the backend.
use strict;
use warnings;
use Test::More;
use JSON::PP;
use lib 't/lib';
use MLGuard::Backend;

my $json = JSON::PP->new;
my $b = MLGuard::Backend->start(models => ['conf/models/iris.mlgf'], threads => 2,
                                args => ['--max-body', '64k']);

sub bad {
    my ($path, $body, $status, $re, $name) = @_;
    my $r = $b->request(POST => $path, $body);
    my $err = eval { $json->decode($r->{body})->{error} } // '';
    subtest $name => sub {
        is($r->{status}, $status, "status $status");
        like($err, $re, 'error names the problem') or diag $r->{body};
    };
}

my $row = '[5.1,3.5,1.4,0.2]';
bad('/predict', '{"input":[5.1,3.5,1.4]}', 400, qr/wrong feature count.*3 values.*expects 4/,
    'too few features');
bad('/predict', '{"input":[[5.1,3.5,1.4,0.2,9]]}', 400, qr/feature count.*5 values/, 'too many features');
bad('/v1/models/iris:predict', '{"instances":[[1,2]]}', 400, qr/feature count/, 'V1 feature count');
bad('/v2/models/iris/infer', '{"inputs":[{"name":"x","shape":[1,3],"datatype":"FP32","data":[1,2,3]}]}',
    400, qr/feature count/, 'V2 feature count');
bad('/predict', '{"input":[5.1,"3.5",1.4,0.2]}', 400, qr/input\[1\] is a string.*non-numeric/, 'string feature');
bad('/predict', '{"input":[[5.1,3.5,1.4,0.2],[1,2,null,4]]}', 400, qr/input\[1\]\[2\] is null/, 'null feature');
bad('/predict', '{"input":[5.1,true,1.4,0.2]}', 400, qr/boolean/, 'boolean feature');
bad('/predict', '{"input":[5.1,{},1.4,0.2]}', 400, qr/object, not a number/, 'object feature');
bad('/predict', '{"input":[5.1,NaN,1.4,0.2]}', 400, qr/NaN or Infinity/, 'NaN');
bad('/predict', '{"input":[5.1,-Infinity,1.4,0.2]}', 400, qr/NaN or Infinity/, '-Infinity');
bad('/predict', '{"input":[5.1,1e39,1.4,0.2]}', 400, qr/too large for float32/, 'overflows float32');
bad('/predict', '{"input":[[5.1,3.5,1.4,0.2],[1,2,3]]}', 400, qr/ragged batch: input\[1\] has 3/, 'ragged batch');
bad('/predict', '{"input":[[5.1,3.5,1.4,0.2],5]}', 400, qr/input\[1\] is not an array/, 'rows mixed with values');
bad('/predict', '{"input":[]}', 400, qr/"input" is empty/, 'empty input');
bad('/predict', '{"input":[[]]}', 400, qr/empty row/, 'empty row');
bad('/predict', '{"inputs":[1,2,3,4]}', 400, qr/missing "input"/, 'missing input');
bad('/predict', '{"input":5}', 400, qr/must be an array/, 'input not an array');
bad('/predict', '[1,2,3,4]', 400, qr/must be a JSON object/, 'body not an object');
bad('/predict', '', 400, qr/malformed JSON/, 'empty body');
bad('/predict', '{"input":[5.1,3.5,1.4,0.2]', 400, qr/malformed JSON: unexpected end/, 'truncated JSON');
bad('/predict', '{"input":[5.1,3.5,1.4,0.2]} x', 400, qr/trailing data/, 'trailing garbage');
bad('/predict', '{"input":[5.1,3.5,1.4,0.2],}', 400, qr/malformed JSON at offset/, 'trailing comma');
bad('/predict', "{'input':$row}", 400, qr/malformed JSON/, 'single quotes');
bad('/predict', '{"input":[05.1,3.5,1.4,0.2]}', 400, qr/malformed JSON/, 'leading zero');
bad('/predict', '{"input":[5.,3.5,1.4,0.2]}', 400, qr/malformed JSON/, 'bare decimal point');
bad('/predict', qq({"a":"\x01","input":[1,2,3,4]}), 400, qr/control character/, 'control char in string');
bad('/predict', '{"a":"\\q","input":[1,2,3,4]}', 400, qr/bad escape/, 'bad escape in string');
bad('/predict', '{"input":[1,2,3,4],"input":[1,2,3,4]}', 400, qr/duplicate "input"/, 'duplicate key');
bad('/predict', '{"x":' . ('[' x 100) . (']' x 100) . ',"input":[1,2,3,4]}', 400, qr/deeper than 64/,
    'deep nesting in skipped member');
bad('/v1/models/iris:predict', '{"instances":[1,2,3,4]}', 400, qr/list of rows/, 'V1 flat instances');
bad('/v1/models/iris:predict', '{"instances":[[1,2,3,4],[1,2,3]]}', 400, qr/ragged/, 'V1 ragged');
bad('/v2/models/iris/infer', '{"inputs":[]}', 400, qr/"inputs" is empty/, 'V2 no tensors');
bad('/v2/models/iris/infer', '{"inputs":[{"name":"x","shape":[2,4],"datatype":"FP32","data":[1,2,3,4]}]}',
    400, qr/holds 4 values but shape \[2, 4\] needs 8/, 'V2 shape/data mismatch');
bad('/v2/models/iris/infer', '{"inputs":[{"name":"x","shape":[4],"datatype":"FP32","data":[1,2,3,4]}]}',
    400, qr/shape must be \[rows, features\]/, 'V2 rank 1 shape');
bad('/v2/models/iris/infer', '{"inputs":[{"name":"x","shape":[1,4],"datatype":"BYTES","data":[1,2,3,4]}]}',
    400, qr/datatype BYTES is not numeric/, 'V2 BYTES');
bad('/v2/models/iris/infer', '{"inputs":[{"name":"x","shape":[1,4],"datatype":"FP32","data":[1,"a",3,4]}]}',
    400, qr/inputs\[0\]\.data\[1\] is a string/, 'V2 non-numeric');
bad('/v2/models/iris/infer', '{"inputs":[{"name":"x","shape":[1,4],"data":[1,2,3,4]},'
    . '{"name":"y","shape":[1,4],"data":[1,2,3,4]}]}', 400, qr/exactly one tensor/, 'V2 two tensors');
bad('/v2/models/iris/infer', '{"inputs":[{"name":"x","shape":[1,4],"data":[1,2,3,4]}],'
    . '"outputs":[{"name":"explain"}]}', 400, qr/unknown output "explain"/, 'V2 unknown output');
bad('/v2/models/iris/infer', '{"inputs":[{"name":"x","data":[1,2,3,4]}]}', 400,
    qr/needs "shape" and "data"/, 'V2 missing shape');

# body over --max-body: refused from Content-Length, before the body is read
my $big = '{"input":[' . join(',', ('1.5') x 30000) . ']}';
my $c = $b->connect;
$c->send_raw("POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: " . length($big) . "\r\n\r\n");
my $r = $c->read_response;
is($r->{status}, 413, 'oversize Content-Length -> 413 before the body is sent');
like($json->decode($r->{body})->{error}, qr/exceeds the limit of 65536/, '413 names the limit');
is($r->{headers}{connection}, 'close', 'connection closed after 413');
ok($c->wait_closed(5), 'server closed the connection');

# chunked body over the limit
$c = $b->connect;
$c->send_raw("POST /predict HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
my $r2;
for (1 .. 20) {
    last if !eval { $c->send_raw(sprintf("%x\r\n%s\r\n", 8192, 'x' x 8192)); 1 };
}
$r2 = $c->read_response;
is($r2->{status}, 413, 'oversize chunked body -> 413');

# chunked body under the limit works
$c = $b->connect;
my $body = '{"input":[5.1,3.5,1.4,0.2]}';
$c->send_raw("POST /predict HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    . sprintf("%x\r\n%s\r\n", 10, substr($body, 0, 10))
    . sprintf("%x\r\n%s\r\n0\r\n\r\n", length($body) - 10, substr($body, 10)));
$r = $c->read_response;
is_deeply([$r->{status}, $r->{body}], [200, '{"prediction":[0]}'], 'chunked request body');

# Expect: 100-continue gets an interim response
$c = $b->connect;
$c->send_raw("POST /predict HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: "
    . length($body) . "\r\n\r\n");
ok($c->read_until(qr{^HTTP/1\.1 100 Continue\r\n\r\n}, 5), 'interim 100 Continue');
$c->send_raw($body);
$r = $c->read_response;
is($r->{status}, 200, 'Expect: 100-continue then body -> 200');

# malformed HTTP
for my $raw ("GARBAGE\r\n\r\n", "POST /predict HTTP/1.1\r\nContent-Length: abc\r\n\r\n",
             "GET / HTTP/1.1\r\nHost: x\r\n" . ('X-Pad: ' . ('a' x 1000) . "\r\n") x 100 . "\r\n") {
    $c = $b->connect;
    $c->send_raw($raw);
    $r = $c->read_response;
    ok($r && ($r->{status} == 400 || $r->{status} == 431),
       'malformed HTTP -> ' . ($r ? $r->{status} : 'no response'));
    ok($c->wait_closed(5), 'and the connection is closed');
}

# long request target
$r = $b->request(GET => '/v2/models/' . ('a' x 9000));
is($r->{status}, 414, 'request target over 8 KiB -> 414');

# still alive and answering
$r = $b->request(POST => '/predict', $body);
is($r->{status}, 200, 'backend still serves after all the bad input');
ok(!$b->exited, 'backend process still running');
is($b->stop, 0, 'clean exit');
done_testing;

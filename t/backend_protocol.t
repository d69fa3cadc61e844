# Every backend endpoint: simple /predict, KServe V1, Open Inference Protocol
# V2 (health, server/model metadata, readiness, infer), methods and 404s.
use strict;
use warnings;
use Test::More;
use JSON::PP;
use lib 't/lib';
use MLGuard::Backend;

my $json = JSON::PP->new->canonical;
my $b = MLGuard::Backend->start(
    models => ['conf/models/iris.mlgf', 'flowers=conf/models/iris.mlgf'], threads => 2);
my @setosa = (5.1, 3.5, 1.4, 0.2);
my @virginica = (6.7, 3.0, 5.2, 2.3);

sub call {
    my ($method, $path, $body) = @_;
    my $r = $b->request($method, $path, defined $body && ref $body ? $json->encode($body) : $body);
    $r->{json} = eval { $json->decode($r->{body}) };
    return $r;
}

# --- simple ---
my $r = call(POST => '/predict', { input => \@setosa });
is($r->{status}, 200, '/predict one row');
is($r->{headers}{'content-type'}, 'application/json', 'JSON response');
is_deeply($r->{json}, { prediction => [0] }, 'one row -> [label]');

$r = call(POST => '/predict', { input => [\@setosa, \@virginica] });
is_deeply($r->{json}{prediction}, [0, 2], 'batch -> labels in order');
ok(!exists $r->{json}{probabilities}, 'no probabilities unless asked');

$r = call(POST => '/predict?probabilities=true', { input => [\@setosa, \@virginica] });
is(scalar @{ $r->{json}{probabilities} }, 2, 'probabilities: one row per input');
is(scalar @{ $r->{json}{probabilities}[0] }, 3, 'probabilities: one value per class');
my $sum = 0;
$sum += $_ for @{ $r->{json}{probabilities}[1] };
ok(abs($sum - 1) < 1e-9, 'probabilities sum to 1');
ok($r->{json}{probabilities}[1][2] > 0.5, 'virginica most probable for a virginica row');

$r = call(POST => '/predict?x=1&probabilities=1', { input => \@setosa });
ok(exists $r->{json}{probabilities}, 'probabilities=1 among other query parameters');

# --- KServe V1 ---
$r = call(POST => '/v1/models/iris:predict', { instances => [\@setosa, \@virginica] });
is($r->{status}, 200, 'V1 predict');
is_deeply($r->{json}, { predictions => [0, 2] }, 'V1 predictions');
$r = call(POST => '/v1/models/flowers:predict', { instances => [\@virginica] });
is_deeply($r->{json}, { predictions => [2] }, 'V1 second model by NAME=FILE name');
$r = call(GET => '/v1/models/iris');
is_deeply($r->{json}, { name => 'iris', ready => JSON::PP::true }, 'V1 model status');

# --- OIP V2 ---
$r = call(GET => '/v2/health/live');
is($r->{status}, 200, 'V2 live');
is_deeply($r->{json}, { live => JSON::PP::true }, 'live body');
$r = call(GET => '/v2/health/ready');
is_deeply([$r->{status}, $r->{json}], [200, { ready => JSON::PP::true }], 'V2 ready');
$r = call(GET => '/v2');
is($r->{json}{name}, 'ml-guard-backend', 'V2 server metadata');
$r = call(GET => '/v2/models/iris/ready');
is_deeply([$r->{status}, $r->{json}], [200, { name => 'iris', ready => JSON::PP::true }],
          'V2 model ready');
$r = call(GET => '/v2/models/iris');
is($r->{status}, 200, 'V2 model metadata');
is_deeply($r->{json}{inputs}, [{ name => 'input-0', datatype => 'FP32', shape => [-1, 4] }],
          'metadata inputs: FP32 [-1, 4]');
is_deeply($r->{json}{outputs}, [
    { name => 'predict', datatype => 'INT64', shape => [-1] },
    { name => 'predict_proba', datatype => 'FP64', shape => [-1, 3] },
], 'metadata outputs: predict INT64 [-1], predict_proba FP64 [-1, 3]');
is_deeply($r->{json}{versions}, ['1'], 'metadata versions');
is_deeply($r->{json}{parameters}{classes}, [0, 1, 2], 'metadata classes');
$r = call(GET => '/v2/models/iris/versions/1');
is($r->{status}, 200, 'versioned metadata path');

my $infer = { id => 'req-7', inputs => [{ name => 'input-0', datatype => 'FP32',
    shape => [2, 4], data => [@setosa, @virginica] }] };
$r = call(POST => '/v2/models/iris/infer', $infer);
is($r->{status}, 200, 'V2 infer (flat data)');
is($r->{json}{model_name}, 'iris', 'model_name');
is($r->{json}{id}, 'req-7', 'id echoed');
is_deeply($r->{json}{outputs}, [{ name => 'predict', datatype => 'INT64', shape => [2], data => [0, 2] }],
          'default output: predict');
$infer->{inputs}[0]{data} = [\@setosa, \@virginica];
$infer->{outputs} = [{ name => 'predict_proba' }];
$r = call(POST => '/v2/models/iris/versions/1/infer', $infer);
is($r->{status}, 200, 'V2 infer (nested data, versioned path)');
is(scalar @{ $r->{json}{outputs} }, 1, 'only the requested output');
is($r->{json}{outputs}[0]{name}, 'predict_proba', 'predict_proba output');
is_deeply($r->{json}{outputs}[0]{shape}, [2, 3], 'predict_proba shape');
is(scalar @{ $r->{json}{outputs}[0]{data} }, 6, 'predict_proba data flat');

# --- methods, unknown paths and models ---
for my $case (
    [GET => '/predict', 'POST'], [PUT => '/predict', 'POST'], [GET => '/v1/models/iris:predict', 'POST'],
    [POST => '/v2/health/ready', 'GET'], [DELETE => '/v2/models/iris', 'GET'],
    [GET => '/v2/models/iris/infer', 'POST'],
) {
    my ($m, $p, $allow) = @$case;
    $r = call($m, $p, $m eq 'GET' ? undef : '{}');
    is($r->{status}, 405, "$m $p -> 405");
    is($r->{headers}{allow}, $allow, "Allow: $allow");
    like($r->{json}{error}, qr/method not allowed/, '405 names the problem');
}
for my $p ('/nope', '/v2/models/iris/explain', '/v1/models/iris:explain', '/v3') {
    $r = call(GET => $p);
    is($r->{status}, 404, "GET $p -> 404");
    like($r->{json}{error}, qr/no such endpoint/, 'names the problem');
}
for my $case ([POST => '/v1/models/nope:predict'], [GET => '/v2/models/nope'],
              [GET => '/v2/models/nope/ready'], [POST => '/v2/models/nope/infer']) {
    $r = call($case->[0], $case->[1], $case->[0] eq 'POST' ? '{}' : undef);
    is($r->{status}, 404, "$case->[0] $case->[1] -> 404");
    is($r->{json}{error}, 'unknown model "nope"', 'names the model');
}
$r = call(GET => '/v2/models/iris/versions/2');
is($r->{status}, 404, 'unknown version -> 404');

is($b->stop, 0, 'clean exit');
done_testing;

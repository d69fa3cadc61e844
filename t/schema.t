# ml_guard_schema / ml_guard_max_json_depth through nginx: every denial
# (415, 400, 422), valid bodies reaching the upstream unchanged, and config
# errors failing `nginx -t` with the file and the JSON pointer.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use JSON::PP;
use MLGuard::Test;

my $t = MLGuard::Test->new;
$t->write_file('conf/wide.json', <<'EOF');
{"type": "object", "properties": {"v": {"items": {"type": "string"}}, "s": {"maxLength": 3}}}
EOF
$t->write_file('any.json', "true\n");
$t->start_echo;
$t->start_nginx(server => q{
    ml_guard_auth none;
    ml_guard_schema %%ROOT%%/conf/schemas/iris.json;

    location /predict {
        ml_guard on;
        proxy_pass http://%%ECHO%%;
    }
    location /file {
        ml_guard on;
        client_body_buffer_size 1k;
        client_max_body_size 1m;
        proxy_pass http://%%ECHO%%;
    }
    location /wide {
        ml_guard on;
        ml_guard_schema wide.json;
        proxy_pass http://%%ECHO%%;
    }
    location /shallow {
        ml_guard on;
        ml_guard_schema %%DIR%%/any.json;
        ml_guard_max_json_depth 3;
        proxy_pass http://%%ECHO%%;
    }
    location /noschema {
        ml_guard on;
        ml_guard_schema off;
        proxy_pass http://%%ECHO%%;
    }
    location /guard-off {
        ml_guard off;
        proxy_pass http://%%ECHO%%;
    }
});

my %json = ('Content-Type' => 'application/json');

sub post {
    my ($path, $body, %h) = @_;
    return $t->request(POST => $path, body => $body,
                       headers => { %json, %h });
}

sub problem {
    my ($r, $status, $reason, $name) = @_;
    subtest $name => sub {
        is $r->{status}, $status, "status $status";
        like $r->{headers}{'content-type'} // '', qr{^application/problem\+json}, 'problem+json';
        is $r->{json}{reason}, $reason, "reason $reason";
        is $r->{json}{status}, $status, 'status in the document';
        ok length($r->{json}{detail} // ''), 'detail: ' . ($r->{json}{detail} // '');
    };
}

# --- allowed: the upstream gets the body byte for byte -------------------
for my $body ('{"input": [5.1, 3.5, 1.4, 0.2]}',
              '{"input":[[5.1,3.5,1.4,0.2],[6.2,2.9,4.3,1.3]]}',
              " {\n\t\"input\" : [ 1e0 , 2.50 , 3 , 0.1E1 ] }\n") {
    my $r = post('/predict', $body);
    is $r->{status}, 200, "valid body allowed: $body";
    is $r->{content}, $body, 'upstream received the body unchanged';
    is $r->{headers}{'x-echo-h-content-type'}, 'application/json', 'content type passed on';
}
for my $ct ('application/json; charset=utf-8', 'APPLICATION/JSON',
            'application/vnd.iris+json', 'application/json;charset="UTF-8"') {
    my $r = post('/predict', '{"input": [1, 2, 3, 4]}', 'Content-Type' => $ct);
    is $r->{status}, 200, "media type accepted: $ct";
}
{
    # chunked body
    my $body = '{"input": [1, 2, 3, 4]}';
    my $raw = "POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        . "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        . join('', map { sprintf("%x\r\n%s\r\n", length $_, $_) } substr($body, 0, 5), substr($body, 5))
        . "0\r\n\r\n";
    my $r = $t->raw_request($raw);
    is $r->{status}, 200, 'chunked valid body allowed';
    is $r->{body}, $body, 'chunked body reaches the upstream';
}
{
    # body buffered to a temporary file (larger than client_body_buffer_size)
    my $rows = join ',', map { '[5.1,3.5,1.4,0.2]' } 1 .. 200;
    my $body = qq({"input": [$rows]});
    ok length($body) > 1024, 'body larger than the memory buffer';
    my $r = post('/file', $body);
    is $r->{status}, 200, 'file-buffered valid body allowed';
    is $r->{content}, $body, 'file-buffered body unchanged';
    my $bad = $body;
    $bad =~ s/0\.2\]$/0.2, 9]/ or $bad =~ s/\]\]\}$/,9]]}/;
    $r = post('/file', $bad);
    problem($r, 422, 'schema_violation', 'file-buffered invalid body denied');
    is $r->{json}{errors}[0]{path}, '/input/199/4', 'error path in a file-buffered body';
}

# --- 415 ------------------------------------------------------------------
problem($t->request(POST => '/predict', body => '{"input": [1,2,3,4]}'),
        415, 'unsupported_media_type', 'no Content-Type: 415');
for my $ct ('text/plain', 'application/x-www-form-urlencoded', 'application/jsonp',
            'application/json-seq', 'multipart/form-data; boundary=x', 'json') {
    problem(post('/predict', '{"input": [1,2,3,4]}', 'Content-Type' => $ct),
            415, 'unsupported_media_type', "Content-Type $ct: 415");
}

# --- 400 ------------------------------------------------------------------
my @malformed = (
    ['', 'empty body'],
    ['{"input": [1,2,3,4]', 'truncated'],
    ['{"input": [1,2,3,4]} x', 'trailing data'],
    ['{"input": [1,2,3,4]}{}', 'two documents'],
    ['{"input": [NaN,2,3,4]}', 'NaN'],
    ['{"input": [Infinity,2,3,4]}', 'Infinity'],
    ['{"input": [1e999,2,3,4]}', 'number overflowing to infinity'],
    ['{"input": [1,2,3,4], "input": [1,2,3,4]}', 'duplicate keys'],
    ["{\"input\": [1,2,3,4], \"x\": \"\xff\"}", 'invalid UTF-8'],
    ["{\"input\": [1,2,3,4]}\0", 'NUL byte after the document'],
    ["{'input': [1,2,3,4]}", 'single quotes'],
);
for my $m (@malformed) {
    problem(post('/predict', $m->[0]), 400, 'malformed_json', "malformed: $m->[1]");
}
{
    my $deep = ('[' x 33) . (']' x 33);
    my $r = post('/wide', $deep);
    problem($r, 400, 'malformed_json', 'depth 33 over the default 32');
    like $r->{json}{detail}, qr/nesting deeper than 32 levels/, 'detail names the depth';
    is post('/wide', ('[' x 32) . (']' x 32))->{status}, 422, 'depth 32 parses (then fails the schema)';
    problem(post('/shallow', '[[[[1]]]]'), 400, 'malformed_json', 'depth 4 over ml_guard_max_json_depth 3');
    is post('/shallow', '[[[1]]]')->{status}, 200, 'depth 3 within ml_guard_max_json_depth 3';
    is post('/shallow', '["[[[[[[[[[["]')->{status}, 200, 'brackets inside strings do not count';
    my $huge = ('[' x 100000) . (']' x 100000);
    problem(post('/shallow', $huge), 400, 'malformed_json', '100000 nested arrays rejected');
}

# --- 422 ------------------------------------------------------------------
{
    my $r = post('/predict', '{"input": [5.1, 3.5, 1.4, 200]}');
    problem($r, 422, 'schema_violation', 'out-of-range feature: 422');
    is_deeply $r->{json}{errors}, [{ path => '/input/3', message => 'maximum: must be <= 10' }],
        'errors array: JSON pointer and message naming the keyword and limit';

    $r = post('/predict', '{"input": [5.1, 3.5, 1.4]}');
    problem($r, 422, 'schema_violation', 'three features: 422');
    is $r->{json}{errors}[0]{message}, 'minItems: must have at least 4 items', 'minItems message';

    $r = post('/predict', '{"input": [5.1, "x", 1.4, 0.2], "extra": true}');
    is $r->{status}, 422, 'two problems: 422';
    is_deeply [map { $_->{path} } @{ $r->{json}{errors} }], ['/input/1', '/extra'],
        'both errors reported, in document order';

    $r = post('/predict', '{"inputs": [1, 2, 3, 4]}');
    is_deeply [map { $_->{message} } @{ $r->{json}{errors} }],
        ['required: property "input" is missing', 'additionalProperties: property is not allowed'],
        'missing property and unknown property';

    $r = post('/predict', '[1, 2, 3, 4]');
    is $r->{json}{errors}[0]{message}, 'type: must be object', 'bare array: type error';

    $r = post('/wide', encode_json({ v => [1 .. 25] }));
    problem($r, 422, 'schema_violation', '25 errors: 422');
    is scalar @{ $r->{json}{errors} }, 10, 'at most 10 errors';
    like $r->{json}{detail}, qr/first 10 errors/, 'detail says the list is cut';

    my $long = 'A' x 5000;
    $r = post('/wide', encode_json({ s => $long }));
    is $r->{status}, 422, 'long string value: 422';
    unlike $r->{content}, qr/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA/,
        'the long value is not echoed back';

    $r = post('/wide', '{"v": {"a/b~c": 1}, "s": "x"}');
    is $r->{status}, 200, 'items applies only to arrays';
    $r = post('/wide', '{"v": ["ok", 2], "s": 1}');
    is $r->{json}{errors}[0]{path}, '/v/1', 'array index in the path';
}
{
    my $t2 = MLGuard::Test->new;
    $t2->write_file('s.json', '{"additionalProperties": {"type": "string"}}');
    $t2->start_echo;
    $t2->start_nginx(server => q{
        location / { ml_guard on; ml_guard_auth none; ml_guard_schema %%DIR%%/s.json;
                     proxy_pass http://%%ECHO%%; }
    });
    my $r = $t2->request(POST => '/', headers => \%json, body => '{"a/b~c": 1}');
    is $r->{json}{errors}[0]{path}, '/a~1b~0c', 'RFC 6901 escaping of / and ~ in paths';
    $r = $t2->request(POST => '/', headers => \%json, body => '{"\u00e9": 1}');
    is $r->{json}{errors}[0]{path}, "/\x{e9}", 'non-ASCII property name in the path';
    $t2->stop;
}

# --- order: authentication and the body cap come before any parsing ------
{
    my $t4 = MLGuard::Test->new;
    my $key = MLGuard::Test::random_key();
    $t4->write_file('keys.txt', "alice " . MLGuard::Test::sha256_hex_of($key) . "\n");
    $t4->start_echo;
    $t4->start_nginx(server => q{
        location / { ml_guard on; ml_guard_api_keys %%DIR%%/keys.txt; ml_guard_max_body 100;
                     ml_guard_schema %%ROOT%%/conf/schemas/iris.json; proxy_pass http://%%ECHO%%; }
    });
    my $r = $t4->request(POST => '/', headers => { %json }, body => '{"input": [NaN]}');
    is $r->{status}, 401, 'no credentials and a malformed body: 401, the body is not parsed';
    $r = $t4->request(POST => '/', headers => { 'Content-Type' => 'text/plain' }, body => 'x');
    is $r->{status}, 401, 'no credentials and a wrong media type: 401';
    $r = $t4->request(POST => '/', headers => { %json, 'X-API-Key' => $key },
                      body => '{"input": [' . join(',', (1) x 100) . ']}');
    is $r->{status}, 413, 'a body over ml_guard_max_body: 413 before parsing';
    $r = $t4->request(POST => '/', headers => { %json, 'X-API-Key' => $key },
                      body => '{"input": [5.1, 3.5, 1.4, 0.2]}');
    is $r->{status}, 200, 'authenticated valid body: 200';
    $r = $t4->request(POST => '/', headers => { %json, 'X-API-Key' => $key },
                      body => '{"input": [5.1, 3.5, 1.4, 99]}');
    is $r->{status}, 422, 'authenticated invalid body: 422';
    like $t4->read_file('logs/error.log'), qr{schema violation at "/input/3": maximum: must be <= 10},
        'the violation is logged (info) with path and message';
    $t4->stop;
}

# --- reload picks up a changed schema; a broken one keeps the old config --
{
    my $t3 = MLGuard::Test->new;
    $t3->write_file('r.json', '{"maximum": 10}');
    $t3->start_echo;
    my %conf = (server => q{
        location / { ml_guard on; ml_guard_auth none; ml_guard_schema %%DIR%%/r.json;
                     proxy_pass http://%%ECHO%%; }
    });
    $t3->start_nginx(%conf);
    my $post = sub { $t3->request(POST => '/', headers => \%json, body => $_[0])->{status} };
    is $post->('5'), 200, 'before reload: 5 <= 10';
    $t3->write_file('r.json', '{"maximum": 3}');
    $t3->reload_nginx(%conf);
    is $post->('5'), 422, 'after reload: the new schema applies';
    $t3->write_file('r.json', '{"maximum": "3"}');
    my ($ok, $out) = $t3->nginx_test(%conf);
    ok !$ok, 'broken schema fails nginx -t';
    my $pid = $t3->{pids}{nginx};
    kill 'HUP', $pid;
    ok MLGuard::Test::wait_for(sub { $t3->read_file('logs/error.log') =~ /r\.json: \/maximum: must be a number/ }, 10),
        'a reload with a broken schema is refused with the pointer in the error log';
    is $post->('5'), 422, 'the previous configuration keeps running';
    is $post->('2'), 200, '  and still allows valid bodies';
    $t3->stop;
}

# --- schema off / ml_guard off -------------------------------------------
is post('/noschema', 'not json', 'Content-Type' => 'text/plain')->{status}, 200,
    'ml_guard_schema off: no JSON checks';
is post('/guard-off', 'not json', 'Content-Type' => 'text/plain')->{status}, 200,
    'ml_guard off: no JSON checks';

# --- configuration errors fail nginx -t ----------------------------------
{
    my $c = MLGuard::Test->new;
    $c->write_file('bad.json', '{"properties": {"input": {"items": {"minimum": "0"}}}}');
    $c->write_file('unknown.json', '{"properties": {"a": {"contains": {}}}}');
    $c->write_file('syntax.json', "{\n  \"type\": \"object\",\n}\n");
    $c->write_file('ref.json', '{"$ref": "#/$defs/nope"}');
    my @cases = (
        ['ml_guard_schema %%DIR%%/bad.json;',
         qr{bad\.json: /properties/input/items/minimum: must be a number}, 'wrong keyword type'],
        ['ml_guard_schema %%DIR%%/unknown.json;',
         qr{unknown\.json: /properties/a/contains: unsupported keyword "contains"}, 'unsupported keyword'],
        ['ml_guard_schema %%DIR%%/syntax.json;', qr{syntax\.json: line 3}, 'JSON syntax error'],
        ['ml_guard_schema %%DIR%%/ref.json;', qr{ref\.json: /\$ref: cannot resolve}, 'unresolvable $ref'],
        ['ml_guard_schema %%DIR%%/missing.json;', qr{missing\.json: cannot open: No such file}, 'missing file'],
        ['ml_guard_max_json_depth 0;', qr{invalid value "0"}, 'depth 0'],
        ['ml_guard_max_json_depth abc;', qr{invalid value "abc"}, 'depth not a number'],
        ['ml_guard_max_json_depth 5000;', qr{invalid value "5000"}, 'depth too large'],
        ['ml_guard_max_json_depth 5; ml_guard_max_json_depth 6;', qr{is duplicate}, 'duplicate depth'],
        ['ml_guard_schema %%ROOT%%/conf/schemas/iris.json; ml_guard_schema off;', qr{is duplicate},
         'duplicate schema'],
    );
    for my $case (@cases) {
        my ($ok, $out) = $c->nginx_test(server => "location / { ml_guard on; ml_guard_auth none; $case->[0] }");
        ok !$ok, "nginx -t fails: $case->[2]";
        like $out, $case->[1], "  message names the problem" or diag $out;
        like $out, qr{nginx\.conf:\d+}, '  and the config line' if $case->[0] =~ /schema/;
    }
    my ($ok, $out) = $c->nginx_test(server =>
        'location / { ml_guard on; ml_guard_auth none; ml_guard_schema %%ROOT%%/conf/schemas/iris.json; '
        . 'ml_guard_max_json_depth 64; }');
    ok $ok, 'valid schema configuration passes nginx -t' or diag $out;
}

$t->stop;
done_testing;

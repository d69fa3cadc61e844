# Bounded validation work per request, through nginx: 1 MB bodies built to
# make regular expressions and uniqueItems expensive get an answer (a 422
# refusal, or a verdict) instead of holding the worker; client keys in
# schema error paths and bytes of malformed JSON reach neither the error
# log nor the response as control characters.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use JSON::PP;
use MLGuard::Test;

my $t = MLGuard::Test->new;
$t->write_file('any_of.json', <<'EOF2');
{"type": "array", "items": {"anyOf": [{"pattern": "^(a+)+$"}, {"type": "string"}]}}
EOF2
$t->write_file('not.json', <<'EOF2');
{"type": "array", "items": {"not": {"pattern": "^(a+)+$"}}}
EOF2
$t->write_file('just_under.json', <<'EOF2');
{"type": "array", "items": {"anyOf": [{"pattern": "^(a+)+$"}, {"type": "string"}]}}
EOF2
$t->write_file('unique.json', <<'EOF2');
{"type": "array", "uniqueItems": true}
EOF2
$t->write_file('closed.json', <<'EOF2');
{"type": "object", "additionalProperties": false}
EOF2
$t->start_echo;
$t->start_nginx(server => q{
    ml_guard_auth none;
    client_max_body_size 4m;
    client_body_buffer_size 4m;
    ml_guard_max_body 4m;

    location /any_of { ml_guard on; ml_guard_schema %%DIR%%/any_of.json; proxy_pass http://%%ECHO%%; }
    location /not { ml_guard on; ml_guard_schema %%DIR%%/not.json; proxy_pass http://%%ECHO%%; }
    location /under { ml_guard on; ml_guard_schema %%DIR%%/just_under.json; proxy_pass http://%%ECHO%%; }
    location /unique { ml_guard on; ml_guard_schema %%DIR%%/unique.json; proxy_pass http://%%ECHO%%; }
    location /closed { ml_guard on; ml_guard_schema %%DIR%%/closed.json; proxy_pass http://%%ECHO%%; }
});

my $js = JSON::PP->new->canonical;

sub post {
    my ($path, $body) = @_;
    return $t->request(POST => $path, body => $body,
                       headers => { 'Content-Type' => 'application/json' });
}

sub work_limit {
    my ($r, $name) = @_;
    subtest $name => sub {
        is $r->{status}, 422, 'status 422';
        is $r->{json}{reason}, 'schema_violation', 'reason schema_violation';
        is $r->{json}{detail}, 'the request body could not be validated within the work limit',
            'detail names the work limit';
        is_deeply $r->{json}{errors}, [{ path => '', message => 'schema: work limit exceeded' }],
            'one error, no path';
    };
}

# 1 MB of strings that backtrack catastrophically against ^(a+)+$
my $evil = 'a' x 30 . 'b';
my $body = '[' . join(',', ('"' . $evil . '"') x int(1_000_000 / 34)) . ']';
ok length($body) > 990_000, 'adversarial body is about 1 MB';
work_limit(post('/any_of', $body), 'anyOf: an undecidable pattern refuses the request');
work_limit(post('/not', $body), 'not: an undecidable pattern is no pass');

# many strings just under the per-match limit: the request budget ends it
my $under = 'a' x 14 . 'b';
$body = '[' . join(',', ('"' . $under . '"') x int(1_000_000 / 18)) . ']';
work_limit(post('/under', $body), 'values just under the per-match limit: the request budget');

like $t->read_file('logs/error.log'),
    qr{\[error\].*ml_guard: schema validation work limit exceeded \(\d+ node units, \d+ regex units\)},
    'work limit logged at the error level';
unlike $t->read_file('logs/error.log'), qr{aaaaaaaaaaaaaab}, 'no client bytes in the log';

# ordinary strings pass on the same location
is post('/any_of', '["aaa", "b", "' . ('x' x 100_000) . '"]')->{status}, 200,
    'ordinary strings valid';

# uniqueItems: 8 values permuted among 8 keys, 40,320 distinct objects (2 MB)
my @perms = ([]);
for my $v (0 .. 7) {
    @perms = map { my $p = $_; map { my @q = @$p; splice @q, $_, 0, $v; \@q } 0 .. @$p } @perms;
}
my @keys = ('a' .. 'h');
my @objs = map { my $p = $_; +{ map { $keys[$_] => $p->[$_] } 0 .. 7 } } @perms;
is scalar(@objs), 40320, '40,320 permutations';
$body = $js->encode(\@objs);
my $r = post('/unique', $body);
is $r->{status}, 200, 'permuted objects are unique: allowed';
is length($r->{content} // ''), length($body), 'upstream got the whole body';
# a copy with other key order and 7.0 for 7: found
my $dup = '{"h":' . $objs[-1]{h} . ',"g":' . $objs[-1]{g} . ',"f":' . $objs[-1]{f}
    . ',"e":' . $objs[-1]{e} . ',"d":' . $objs[-1]{d} . ',"c":' . $objs[-1]{c}
    . ',"b":' . $objs[-1]{b} . ',"a":' . $objs[-1]{a} . '.0}';
$r = post('/unique', substr($body, 0, -1) . ",$dup]");
is $r->{status}, 422, 'a reordered duplicate: 422';
is $r->{json}{errors}[0]{message}, 'uniqueItems: items 40319 and 40320 are equal', '  which items';

# control characters in a client key: escaped in the log, JSON-escaped in the body
$r = post('/closed', qq({"a\\r\\nX-Injected: 1\\u001b[31m": 1}));
is $r->{status}, 422, 'key with control characters: 422';
is $r->{json}{errors}[0]{path}, "/a\r\nX-Injected: 1\e[31m", 'path in the body (JSON-escaped on the wire)';
unlike $r->{content} =~ s/\n\z//r, qr/[\x00-\x1f]/, 'no raw control character in the response body';
my $log = $t->read_file('logs/error.log');
like $log, qr{schema violation at "/a\\x0d\\x0aX-Injected: 1\\x1b\[31m"}, 'path escaped in the log';
unlike $log, qr/[\x00-\x08\x0b-\x1f\x7f]/, 'no control character but newline in the log';
unlike $log, qr/^X-Injected/m, 'no line starts with the injected text';

# a long key: the path in the log is cut
$r = post('/closed', $js->encode({ ('k' x 5000) => 1 }));
is $r->{status}, 422, 'long key: 422';
ok length($r->{json}{errors}[0]{path}) < 260, 'path in the body cut';
my ($line) = grep { /kkkkk/ } split /\n/, $t->read_file('logs/error.log');
ok defined $line && length($line) < 1000, 'log line with the long key is bounded';

# malformed JSON: at most a short printable excerpt in the detail and the log
$r = post('/closed', qq({"a": "x\x01\x1b[31m\r\n"}));
is $r->{status}, 400, 'raw control characters in a string: 400';
unlike $r->{json}{detail}, qr/[\x00-\x1f\x7f]/, 'detail without control characters: ' . $r->{json}{detail};
unlike $t->read_file('logs/error.log'), qr/[\x00-\x08\x0b-\x1f\x7f]/, 'log without control characters';
$r = post('/closed', '{"a": ' . ('"' . 'z' x 5000) . '}');
is $r->{status}, 400, 'long bad token: 400';
ok length($r->{json}{detail}) < 200, 'detail bounded (' . length($r->{json}{detail}) . ' bytes)';

done_testing;

# The V2 request "id" echoed by the backend: decoded from JSON (escapes,
# surrogate pairs), refused when it is not UTF-8, cut to at most 127 bytes on
# a code-point boundary, and always re-encoded as valid JSON.
use strict;
use warnings;
use Test::More;
use Encode ();
use JSON::PP;
use lib 't/lib';
use MLGuard::Backend;

my $b = MLGuard::Backend->start(models => ['conf/models/iris.mlgf'], threads => 1);
my $strict = JSON::PP->new->utf8;

# $lit: the id as raw JSON text (the bytes between the quotes)
sub infer {
    my ($lit) = @_;
    my $body = qq({"id":"$lit","inputs":[{"name":"input-0","datatype":"FP32","shape":[1,4],)
             . qq("data":[5.1,3.5,1.4,0.2]}]});
    my $r = $b->request(POST => '/v2/models/iris/infer', $body);
    # strict: well-formed UTF-8 (no surrogates, nothing past U+10FFFF), then JSON
    my $text = eval { Encode::decode('UTF-8', my $copy = $r->{body}, Encode::FB_CROAK) };
    $r->{utf8_ok} = defined $text;
    $r->{json} = eval { $strict->decode($r->{body}) };
    return $r;
}

sub echoed {   # the id as the client reads it back, as UTF-8 bytes
    my ($r) = @_;
    return undef unless $r->{json} && defined $r->{json}{id};
    return Encode::encode('UTF-8', $r->{json}{id});
}

my $r = infer('a\\"b\\\\c\\/d\\n\\u00e9\\ud83d\\ude00');
is($r->{status}, 200, 'id with escapes: 200');
ok($r->{utf8_ok} && $r->{json}, 'the response is valid UTF-8 and valid JSON') or diag $r->{body};
is(echoed($r), "a\"b\\c/d\n\xc3\xa9\xf0\x9f\x98\x80", 'escapes decoded, then re-encoded');

$r = infer("caf\xc3\xa9");
is(echoed($r), "caf\xc3\xa9", 'raw UTF-8 echoed unchanged');

$r = infer('x\\u0000y');
ok($r->{json}, 'an id holding U+0000 comes back as valid JSON') or diag $r->{body};
is(echoed($r), "x\0y", 'U+0000 kept');

# long ids: cut on a code-point boundary, whatever the alignment
my $bad = 0;
for my $n (120 .. 130) {
    for my $tail ("\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80", '\\u00e9', '\\ud83d\\ude00') {
        $r = infer(('a' x $n) . ($tail x 10));
        my $id = echoed($r);
        unless ($r->{status} == 200 && $r->{utf8_ok} && defined $id && length($id) <= 127
                && length($id) >= 124 && $id =~ /^a{1,127}/) {
            diag "n=$n tail=$tail: status $r->{status}, body $r->{body}";
            $bad++;
        }
    }
}
is($bad, 0, 'long ids echoed as valid JSON, at most 127 bytes, on a code-point boundary');

# what cannot be echoed faithfully is refused with a specific error
for my $case (["\xff", 'a byte that is never UTF-8'], ["\xc3(", 'a truncated sequence'],
              ["\xc0\xaf", 'an overlong form'], ["\xed\xa0\x80", 'an encoded surrogate'],
              [('a' x 126) . "\xe2\x82", 'a sequence cut at the end'],
              [('a' x 300) . "\xff", 'invalid UTF-8 after the first 127 bytes']) {
    $r = infer($case->[0]);
    is($r->{status}, 400, "id with $case->[1]: 400");
    like($r->{json} ? $r->{json}{error} : $r->{body}, qr/"id" is not valid UTF-8/, 'the error says so');
    ok($r->{utf8_ok}, 'and the error response is valid UTF-8');
}
for my $lit ('\\ud83d', '\\ude00', '\\ud83d\\u0041') {
    $r = infer($lit);
    is($r->{status}, 400, "id $lit: 400");
    like($r->{json} ? $r->{json}{error} : $r->{body}, qr/"id" .*surrogate/, 'the error names the surrogate');
}

# errors that quote the request stay valid JSON: bytes that are not UTF-8,
# and a character cut short at the end of a quote, come out as U+FFFD
for my $case (
    [POST => '/v2/models/iris/infer',
     qq({"inputs":[{"shape":[1,4],"data":[1,2,3,4],"datatype":"\xff\xfeINT8"}]}), 400, 'a datatype that is not UTF-8'],
    [GET => '/v2/models/a' . ("\xc3\xa9" x 60), undef, 404, 'an unknown model name cut in a character'],
    [GET => '/v2/models/x' . ("\xc3\xa9" x 60) . '/ready', undef, 404, 'the same on /ready'],
    [GET => '/nope/' . ("\xe2\x82\xac" x 100), undef, 404, 'an unknown path cut in a character'],
    [GET => "/nope/\xff\xc0\xaf", undef, 404, 'an unknown path that is not UTF-8'],
) {
    my ($m, $path, $body, $status, $what) = @$case;
    $r = $b->request($m, $path, $body);
    is($r->{status}, $status, "$what: $status");
    ok(defined eval { Encode::decode('UTF-8', my $copy = $r->{body}, Encode::FB_CROAK) }
       && eval { $strict->decode($r->{body}) }, "$what: the error is valid UTF-8 JSON")
        or diag $r->{body};
}

# the server keeps serving
$r = infer('ok');
is(echoed($r), 'ok', 'a plain id after all that');
is($b->stop, 0, 'backend stopped cleanly');

done_testing;

# Sealed models (AES-256-GCM, header as associated data): round trip, wrong
# key, one flipped byte anywhere, truncation, a missing or malformed key, and
# a corrupt checksum in a plain file.
use strict;
use warnings;
use Test::More;
use File::Temp qw(tempdir);
use lib 't/lib';
use MLGuard::Backend;

my $py = '/usr/bin/python3';
plan skip_all => 'needs /usr/bin/python3 with sklearn and cryptography'
    unless system($py, '-c', 'import sklearn, cryptography') == 0;

my $dir = tempdir('mlg-sealed-XXXXXX', TMPDIR => 1, CLEANUP => 1);
sub spew { my ($f, $d) = @_; open my $fh, '>:raw', $f or die "$f: $!"; print $fh $d; close $fh; }
sub slurp { my ($f) = @_; open my $fh, '<:raw', $f or die "$f: $!"; local $/; scalar <$fh> }
sub random_key { open my $r, '<:raw', '/dev/urandom' or die; read $r, my $k, 32; $k }

spew("$dir/key", random_key());
spew("$dir/other.key", random_key());
spew("$dir/short.key", 'x' x 31);
is(system($py, '-c', <<"PY"), 0, 'pickled the iris forest');
import joblib
from sklearn.datasets import load_iris
from sklearn.ensemble import RandomForestClassifier
X, y = load_iris(return_X_y=True)
joblib.dump(RandomForestClassifier(n_estimators=100, random_state=42).fit(X, y), "$dir/iris.pkl")
PY
is(system($py, 'scripts/export-sklearn-model', "$dir/iris.pkl", "$dir/sealed.mlgf",
          '--encrypt', "$dir/key"), 0, 'export --encrypt');
my $sealed = slurp("$dir/sealed.mlgf");
is(substr($sealed, 0, 4), 'MLGS', 'sealed magic');
unlike($sealed, qr/MLGF/, 'plaintext header not visible');
is(length($sealed), length(slurp('conf/models/iris.mlgf')) + 32 + 16,
   'sealed size = plain + 32-byte header + 16-byte tag');
is(system($py, 'scripts/export-sklearn-model', "$dir/iris.pkl", "$dir/sealed2.mlgf",
          '--encrypt', "$dir/key"), 0, 'export again');
isnt(substr(slurp("$dir/sealed2.mlgf"), 8, 12), substr($sealed, 8, 12), 'fresh random nonce each time');
isnt(system("$py scripts/export-sklearn-model $dir/iris.pkl $dir/x.mlgf --encrypt $dir/short.key 2>/dev/null"),
     0, 'exporter refuses a key file that is not 32 bytes');

my $body = '{"input":[[5.1,3.5,1.4,0.2],[6.7,3.0,5.2,2.3]]}';
my $b = MLGuard::Backend->start(models => ["iris=$dir/sealed.mlgf"], model_key => "$dir/key",
                                threads => 1);
my $r = $b->request(POST => '/predict?probabilities=true', $body);
my $plain = MLGuard::Backend->start(models => ['conf/models/iris.mlgf'], threads => 1);
is($r->{status}, 200, 'sealed model serves with the right key');
is($r->{body}, $plain->request(POST => '/predict?probabilities=true', $body)->{body},
   'round trip: identical answers to the plain model');
$plain->stop;

sub refused {
    my ($name, $file, $key, $re) = @_;
    my $x = MLGuard::Backend->start(models => ["m=$file"], $key ? (model_key => $key) : (),
                                    wait => 0);
    ok($x->wait_exit(10), "$name: backend refuses to start");
    isnt($x->exit_status, 0, "$name: error status");
    like($x->log, $re, "$name: clear error") or diag $x->log;
}

refused('wrong key', "$dir/sealed.mlgf", "$dir/other.key", qr/failed authentication \(wrong key or modified file\)/);
refused('no key', "$dir/sealed.mlgf", undef, qr/sealed: start the backend with --model-key/);
refused('short key file', "$dir/sealed.mlgf", "$dir/short.key", qr/must hold exactly 32 raw bytes \(has 31\)/);

# one flipped byte: in the header (associated data), the ciphertext, the tag
for my $pos (4, 10, 40, int(length($sealed) / 2), length($sealed) - 1) {
    my $t = $sealed;
    substr($t, $pos, 1) = chr(ord(substr($t, $pos, 1)) ^ 0x01);
    spew("$dir/flip$pos.mlgf", $t);
    refused("flipped byte at $pos", "$dir/flip$pos.mlgf", "$dir/key",
            $pos == 4 ? qr/unsupported sealed model version/
          : qr/failed authentication|truncated or padded/);
}
spew("$dir/trunc.mlgf", substr($sealed, 0, length($sealed) - 5));
refused('truncated sealed file', "$dir/trunc.mlgf", "$dir/key", qr/sealed model file truncated/);
spew("$dir/tiny.mlgf", substr($sealed, 0, 20));
refused('sealed header only', "$dir/tiny.mlgf", "$dir/key", qr/sealed model file truncated/);

# plain files: corrupt checksum, flipped payload byte, truncation
my $p = slurp('conf/models/iris.mlgf');
my $t = $p;
substr($t, -1, 1) = chr(ord(substr($t, -1, 1)) ^ 0xff);
spew("$dir/badsum.mlgf", $t);
refused('corrupt checksum', "$dir/badsum.mlgf", undef, qr/checksum mismatch/);
$t = $p;
substr($t, 5000, 1) = chr(ord(substr($t, 5000, 1)) ^ 0x10);
spew("$dir/flipped.mlgf", $t);
refused('flipped payload byte', "$dir/flipped.mlgf", undef, qr/checksum mismatch/);
spew("$dir/trunc-plain.mlgf", substr($p, 0, length($p) - 100));
refused('truncated plain file', "$dir/trunc-plain.mlgf", undef, qr/model file truncated/);
spew("$dir/empty.mlgf", '');
refused('empty file', "$dir/empty.mlgf", undef, qr/not an ml-guard model file/);

# SIGHUP re-reads the key: a file sealed under a new key needs the new key
spew("$dir/key2", random_key());
is(system($py, 'scripts/export-sklearn-model', "$dir/iris.pkl", "$dir/sealed.mlgf",
          '--encrypt', "$dir/key2"), 0, 're-sealed under a new key');
$b->signal('HUP');
ok($b->wait_log(qr/reload done: 1 of 1/), 'reload with the old key fails');
like($b->log, qr/failed authentication/, 'and says why');
is($b->request(POST => '/predict', $body)->{status}, 200, 'old model still serving');
spew("$dir/key", slurp("$dir/key2"));
$b->signal('HUP');
ok($b->wait_log(qr/reload done: 0 of 1/), 'reload after the key file was rotated succeeds');
is($b->stop, 0, 'clean exit');
done_testing;

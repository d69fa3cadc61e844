# Exact scikit-learn parity: models trained here with Debian's python3-sklearn
# (iris; a 100-tree depth-14 imbalanced fraud-like forest on 8 features; a
# regressor; ExtraTrees classifier with string labels and regressor; single
# decision trees), exported with scripts/export-sklearn-model and served by
# the backend.  Rows: random, training rows, and rows placed exactly on split
# thresholds (and one float32 step either side).  Labels must be identical and
# probabilities / regression values within 1e-6 of scikit-learn's.
use strict;
use warnings;
use Test::More;
use File::Temp qw(tempdir);
use JSON::PP;
use lib 't/lib';
use MLGuard::Backend;

my $py = '/usr/bin/python3';
plan skip_all => "$py with sklearn not available"
    unless -x $py && system($py, '-c', 'import sklearn') == 0;

my $dir = tempdir('mlg-parity-XXXXXX', TMPDIR => 1, CLEANUP => 1);
my @names = qw(iris fraud regressor extratrees extraregressor tree treeregressor);
is(system($py, 't/lib/backend_models.py', $dir, @names), 0, 'trained and exported the test models');

# The command-line exporter writes the same bytes as the library call.
is(system($py, 'scripts/export-sklearn-model', "$dir/iris.pkl", "$dir/iris-cli.mlgf"), 0,
   'export-sklearn-model runs');
is(slurp("$dir/iris-cli.mlgf"), slurp("$dir/iris.mlgf"), 'exporter output is deterministic');
is(slurp("$dir/iris-cli.mlgf"), slurp('conf/models/iris.mlgf'),
   'shipped conf/models/iris.mlgf is RandomForestClassifier(100, random_state=42) on iris');

my $rounded = 0;
$rounded += JSON::PP->new->decode(slurp("$dir/$_.cases.json"))->{rounded_up} for @names;
cmp_ok($rounded, '>', 0, "threshold rows include $rounded splits whose float32 rounding "
       . 'lies above the float64 threshold (where a naive float32 compare would differ)');

my $b = MLGuard::Backend->start(models => [map { "$dir/$_.mlgf" } @names], threads => 2);
my $json = JSON::PP->new;

for my $name (@names) {
    my $cases = $json->decode(slurp("$dir/$name.cases.json"));
    my $rows = $cases->{rows};
    my $n = @$rows;
    # rows as exact text: re-encoding through Perl numbers could round them
    my $rows_text = rows_json("$dir/$name.cases.json");
    my $is_clf = exists $cases->{proba};

    my $r = $b->request(POST => "/v2/models/$name/infer",
        qq({"inputs":[{"name":"x","datatype":"FP32","shape":[$n,) . scalar(@{ $rows->[0] })
        . qq(],"data":$rows_text}],"outputs":[{"name":"predict"})
        . ($is_clf ? qq(,{"name":"predict_proba"}) : '') . ']}');
    is($r->{status}, 200, "$name: V2 infer of $n rows") or diag $r->{body};
    my $out = $json->decode($r->{body})->{outputs};
    my ($pred) = grep { $_->{name} eq 'predict' } @$out;

    if ($is_clf) {
        my $bad = grep { !same_label($pred->{data}[$_], $cases->{predict}[$_]) } 0 .. $n - 1;
        is($bad, 0, "$name: all $n labels equal scikit-learn's predict");
        my ($proba) = grep { $_->{name} eq 'predict_proba' } @$out;
        my $k = @{ $cases->{classes} };
        is_deeply($proba->{shape}, [$n, $k], "$name: predict_proba shape");
        my ($max, $exact) = (0, 0);
        for my $i (0 .. $n - 1) {
            for my $c (0 .. $k - 1) {
                my $d = abs($proba->{data}[$i * $k + $c] - $cases->{proba}[$i][$c]);
                $max = $d if $d > $max;
                $exact++ if $d == 0;
            }
        }
        cmp_ok($max, '<=', 1e-6, "$name: probabilities within 1e-6 (max diff $max, "
               . "$exact of " . $n * $k . ' bit-equal)');
    } else {
        my ($max, $bad) = (0, 0);
        for my $i (0 .. $n - 1) {
            my $want = $cases->{predict}[$i];
            my $d = abs($pred->{data}[$i] - $want) / (abs($want) > 1 ? abs($want) : 1);
            $max = $d if $d > $max;
        }
        cmp_ok($max, '<=', 1e-6, "$name: $n regression values within 1e-6 (max rel diff $max)");
    }

    # KServe V1 gives the same labels
    $r = $b->request(POST => "/v1/models/$name:predict", qq({"instances":$rows_text}));
    is($r->{status}, 200, "$name: V1 predict");
    my $v1 = $json->decode($r->{body})->{predictions};
    my $bad = grep {
        $is_clf ? !same_label($v1->[$_], $cases->{predict}[$_])
                : abs($v1->[$_] - $cases->{predict}[$_]) > 1e-6 * (1 + abs($cases->{predict}[$_]))
    } 0 .. $n - 1;
    is($bad, 0, "$name: V1 predictions equal scikit-learn's");
}

# The simple endpoint serves the first model (iris), one row at a time too.
my $cases = $json->decode(slurp("$dir/iris.cases.json"));
my @texts = row_texts("$dir/iris.cases.json");
my $c = $b->connect;
my $bad = 0;
for my $i (0 .. 49) {
    my $r = $c->request(POST => '/predict?probabilities=true', qq({"input":$texts[$i]}));
    my $got = $json->decode($r->{body});
    $bad++ unless $r->{status} == 200 && $got->{prediction}[0] == $cases->{predict}[$i]
        && abs($got->{probabilities}[0][0] - $cases->{proba}[$i][0]) <= 1e-6;
}
is($bad, 0, '/predict: 50 single rows on one keep-alive connection match scikit-learn');

is($b->stop, 0, 'backend exits cleanly');
done_testing;

sub slurp {
    my ($f) = @_;
    open my $fh, '<:raw', $f or die "$f: $!";
    local $/;
    return scalar <$fh>;
}

sub same_label {
    my ($got, $want) = @_;
    return defined $got && $got eq $want;
}

# The "rows" array of a cases file, as the exact text Python wrote.
sub rows_json {
    my ($file) = @_;
    my $text = slurp($file);
    $text =~ /"rows":\s*(\[\[.*?\]\])/s or die "no rows in $file";
    return $1;
}

sub row_texts {
    my $all = rows_json(@_);
    return $all =~ /(\[[^\[\]]*\])/g;
}

# JSONTestSuite through nginx: every y_ file is accepted, every n_ file gets
# 400 malformed_json, and no file (i_ included) causes a 5xx or a crash.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use MLGuard::Test;

use MLGuard::Post qw(post_json);

my $dir = MLGuard::Test::root() . '/t/data/json-test-suite/test_parsing';
opendir my $dh, $dir or die "$dir: $!";
my @files = sort grep { /^[yni]_.*\.json$/ } readdir $dh;
closedir $dh;

# Rejected on purpose, see docs/schema.md: duplicate keys are malformed_json
# by the product's policy; jansson cannot hold "\u0000" in an object key.
my %by_design = map { $_ => 1 } qw(
    y_object_duplicated_key.json y_object_duplicated_key_and_value.json
    y_object_escaped_null_in_key.json
);

my $t = MLGuard::Test->new;
$t->write_file('any.json', "true\n");
$t->start_echo;
$t->start_nginx(server => q{
    location / {
        ml_guard on;
        ml_guard_auth none;
        ml_guard_schema %%DIR%%/any.json;
        proxy_pass http://%%ECHO%%;
    }
});

my %count;
for my $f (@files) {
    open my $fh, '<:raw', "$dir/$f" or die;
    local $/;
    my $body = <$fh>;
    close $fh;
    my $r = post_json($t, '/', $body);
    my $kind = substr $f, 0, 1;
    ok $r->{status} < 500, "$f: no 5xx ($r->{status})";
    if ($kind eq 'y' && !$by_design{$f}) {
        is $r->{status}, 200, "$f accepted";
        is $r->{content}, $body, "$f reaches the upstream unchanged" if $r->{status} == 200;
    } elsif ($kind eq 'n' || $by_design{$f}) {
        is $r->{status}, 400, "$f rejected with 400";
    }
    $count{$kind}{ $r->{status} }++;
}
for my $k (qw(y n i)) {
    diag("JSONTestSuite through nginx: ${k}_ " . join(', ',
        map { "$_: $count{$k}{$_}" } sort keys %{ $count{$k} }));
}
$t->stop;
done_testing;

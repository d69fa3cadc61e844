# JSON-Schema-Test-Suite (draft 2020-12) through nginx: every group whose
# schema uses only supported keywords becomes a location with that schema;
# every test instance is POSTed and must get 200 (valid) or 422 (invalid).
# t/unit/test_schema_suite.c runs the same cases against the validator
# directly and checks that the other groups fail to compile.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use JSON::PP;
use B;
use MLGuard::Test;

use MLGuard::Post qw(post_json);

my $dir = MLGuard::Test::root() . '/t/data/json-schema-test-suite/draft2020-12';
my %supported = map { $_ => 1 } qw(
    $schema $id $comment title description format default examples $defs $ref
    type enum const properties patternProperties additionalProperties propertyNames
    required dependentRequired minProperties maxProperties items prefixItems minItems
    maxItems uniqueItems minimum maximum exclusiveMinimum exclusiveMaximum multipleOf
    minLength maxLength pattern allOf anyOf oneOf not if then else
);

sub uses_only_supported {
    my ($s, $root) = @_;
    return 1 if JSON::PP::is_bool($s);
    return 0 unless ref $s eq 'HASH';
    for my $k (keys %$s) {
        my $v = $s->{$k};
        return 0 unless $supported{$k};
        return 0 if $k eq '$id' && !$root;
        return 0 if $k eq '$schema' && $v !~ m{^https://json-schema\.org/draft/2020-12/schema};
        return 0 if $k eq '$ref' && $v !~ m{^#(?:/|$)};
        if ($k =~ /^(?:additionalProperties|propertyNames|items|not|if|then|else)$/) {
            return 0 unless uses_only_supported($v, 0);
        }
        if ($k =~ /^(?:properties|patternProperties|\$defs)$/) {
            for (values %$v) { return 0 unless uses_only_supported($_, 0) }
        }
        if ($k =~ /^(?:allOf|anyOf|oneOf|prefixItems)$/) {
            for (@$v) { return 0 unless uses_only_supported($_, 0) }
        }
    }
    return 1;
}

binmode Test::More->builder->$_, ':encoding(UTF-8)' for qw(output failure_output todo_output);

# JSON::PP writes floats with 15 significant digits; an instance whose
# numbers do not survive that re-encoding is run by the unit test only.
sub reencodes_exactly {
    my ($v) = @_;
    if (ref $v eq 'HASH') { for (values %$v) { return 0 unless reencodes_exactly($_) } return 1 }
    if (ref $v eq 'ARRAY') { for (@$v) { return 0 unless reencodes_exactly($_) } return 1 }
    return 1 if ref $v || !defined $v;
    my $flags = B::svref_2object(\$v)->FLAGS;
    return 1 unless ($flags & B::SVp_NOK()) && !($flags & B::SVp_POK());
    return 0 + sprintf('%.15g', $v) == $v;
}

my $js = JSON::PP->new->utf8->canonical->allow_nonref;
my $t = MLGuard::Test->new;
my (@cases, $locations);
my $g = 0;
my $skipped = 0;
for my $file (sort glob "$dir/*.json") {
    open my $fh, '<:raw', $file or die;
    local $/;
    my $doc = $js->decode(<$fh>);
    close $fh;
    (my $name = $file) =~ s{.*/}{};
    for my $group (@$doc) {
        next unless uses_only_supported($group->{schema}, 1);
        $g++;
        $t->write_file("s/$g.json", $js->encode($group->{schema}));
        $locations .= "location = /g/$g { ml_guard_schema %%DIR%%/s/$g.json; proxy_pass http://%%ECHO%%; }\n";
        for my $test (@{ $group->{tests} }) {
            if (!reencodes_exactly($test->{data})) {
                $skipped++;
                next;
            }
            push @cases, [$g, "$name: $group->{description}: $test->{description}",
                          $js->encode($test->{data}), $test->{valid}];
        }
    }
}
$t->start_echo;
$t->start_nginx(server => "ml_guard on; ml_guard_auth none;\n$locations");

my %seen;
for my $c (@cases) {
    my ($g, $desc, $body, $valid) = @$c;
    my $r = post_json($t, "/g/$g", $body);
    is $r->{status}, $valid ? 200 : 422, $desc;
    $seen{ $r->{status} }++;
}
diag(sprintf 'suite through nginx: %d groups, %d tests (%s), %d not re-encodable', $g, scalar @cases,
     (join ', ', map { "$_: $seen{$_}" } sort keys %seen), $skipped);
$t->stop;
done_testing;

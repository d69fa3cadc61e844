package MLGuard::Unit;

# Runs one C unit test binary from build/unit/ in place of the .t file, so
# its TAP output reaches prove unchanged.  Usage in t/unit/NAME.t:
#   use lib 't/lib'; use MLGuard::Unit; MLGuard::Unit::run('test_NAME');

use strict;
use warnings;
use File::Basename qw(dirname);
use File::Spec;

sub root {
    my $here = File::Spec->rel2abs(dirname(__FILE__));
    return File::Spec->catdir($here, '..', '..', '..');
}

sub run {
    my ($name, @args) = @_;
    my $bin = File::Spec->catfile(root(), 'build', 'unit', $name);
    unless (-x $bin) {
        print "1..0 # SKIP $bin not built (run scripts/setup)\n";
        print STDERR "missing unit test binary $bin\n";
        exit 1;
    }
    exec { $bin } $bin, @args or die "exec $bin: $!";
}

1;

# nginx -s reload picks up a changed key file; a broken one keeps the old keys.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use MLGuard::Test qw(sha256_hex_of random_key wait_for);

my $t = MLGuard::Test->new;
my ($ka, $kb) = (random_key(), random_key());
$t->write_file('keys.txt', "alice " . sha256_hex_of($ka) . "\n");
$t->start_echo;
my %conf = (server => q{
    location / { ml_guard on; ml_guard_api_keys %%DIR%%/keys.txt; proxy_pass http://%%ECHO%%; }
});
$t->start_nginx(%conf);

sub status_for { $t->request(GET => '/', headers => {'X-API-Key' => $_[0]})->{status} }

is status_for($ka), 200, 'alice works before the change';
is status_for($kb), 401, 'bob is unknown before the change';

$t->write_file('keys.txt', "bob " . sha256_hex_of($kb) . "\n");
is status_for($kb), 401, 'editing the file alone changes nothing (loaded at config time)';

$t->reload_nginx;
ok wait_for(sub { status_for($kb) == 200 }, 10), 'after reload bob works';
is status_for($ka), 401, 'and alice, removed from the file, is refused';

# a broken key file: the reload is refused and the running keys stay
$t->write_file('keys.txt', "carol nothex\n");
my $log_before = length $t->read_file('logs/error.log');
kill 'HUP', $t->{pids}{nginx};
ok wait_for(sub { substr($t->read_file('logs/error.log'), $log_before) =~ /keys\.txt:1: digest/ }, 10),
   'the bad reload is reported with file:line';
is status_for($kb), 200, 'the old keys keep working after a failed reload';

$t->stop;
done_testing;

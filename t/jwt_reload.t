# JWT keys are read at config time: after the key file changes, `nginx -s
# reload` switches keys, and no token verified (and cached) under the old
# key is accepted by the new workers.  A reload with a broken key file keeps
# the old configuration running.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use MLGuard::Test;
use MLGuard::JWT;
use File::Copy qw(copy);

my $t = MLGuard::Test->new(workers => 2);
my $k = MLGuard::JWT->new($t->dir);
my $dir = $t->dir;

$k->rsa('old');
$k->rsa('new');
copy($k->pub_path('old'), "$dir/current.pem") or die "copy: $!";

$t->start_echo;
my %conf = (server => 'location / { ml_guard on; ml_guard_jwt_key %%DIR%%/current.pem; proxy_pass http://%%ECHO%%; }');
$t->start_nginx(%conf);

my $old = $k->token(alg => 'RS256', key => 'old');
my $new = $k->token(alg => 'RS256', key => 'new');
sub status { $t->request(GET => '/', headers => { Authorization => "Bearer $_[0]" })->{status} }

# several requests so that both workers have verified and cached the token
is status($old), 200, "old key's token accepted ($_)" for 1 .. 4;
is status($new), 401, "new key's token refused before the change";

copy($k->pub_path('new'), "$dir/current.pem") or die "copy: $!";
$t->reload_nginx;
# both old workers have stopped accepting connections
ok MLGuard::Test::wait_for(sub { (() = $t->read_file('logs/error.log') =~ /gracefully shutting down/g) >= 2 }, 10),
    'both old workers are shutting down';
is status($old), 401, "after reload: old key's token refused ($_), cache gone with the old workers" for 1 .. 4;
is status($new), 200, "after reload: new key's token accepted";

$t->write_file('current.pem', "-----BEGIN PUBLIC KEY-----\ngarbage\n-----END PUBLIC KEY-----\n");
my $pid = $t->{pids}{nginx};
kill 'HUP', $pid;
ok MLGuard::Test::wait_for(sub { $t->read_file('logs/error.log') =~ /current\.pem: cannot read a PEM/ }, 10),
    'broken key file on reload: error logged';
is status($new), 200, 'broken key file on reload: the running configuration stays';

$t->stop;
done_testing();

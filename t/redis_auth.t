# ml_guard_redis password=: a wrong or missing password is an outage (logged
# once, without the password; fail= applies), the right one works.
use strict;
use warnings;
use Test::More;
use lib 't/lib';
use MLGuard::Test qw(wait_for);

my $t = MLGuard::Test->new;
$t->start_redis(password => 'right-horse-battery');
$t->start_echo;

my $server = q{
    location /a {
        ml_guard on; ml_guard_auth none;
        ml_guard_rate_limit 1r/m burst=1 key=$http_x_k;
        proxy_pass http://%%ECHO%%;
    }
};

sub get { $t->request(GET => '/a', headers => { 'X-K' => $_[0] }) }
sub log_count { my ($re) = @_; scalar(() = $t->read_file('logs/error.log') =~ /$re/g) }

# wrong password, fail=closed
$t->start_nginx(http => 'ml_guard_redis unix:%%REDIS_SOCKET%% password=wrong-staple fail=closed;',
                server => $server);
my @r = map { get("w$_") } 1 .. 5;
is_deeply([ map { $_->{status} } @r ], [ (503) x 5 ], 'wrong password, fail=closed: 503');
is($r[0]{json}{reason}, 'limiter_unavailable', 'reason limiter_unavailable');
ok(wait_for(sub { log_count(qr/AUTH refused: WRONGPASS/) }, 2), 'the AUTH refusal is logged')
    or diag $t->read_file('logs/error.log');
ok(wait_for(sub { (($t->redis_cli("INFO", "errorstats") =~ /errorstat_WRONGPASS:count=(\d+)/)[0] // 0) >= 3 }, 5),
   'the gateway keeps probing (3 AUTH attempts seen by Redis)');
is(log_count(qr/redis \S+ unavailable/), 1, 'logged once, although probes keep failing');
unlike($t->read_file('logs/error.log'), qr/wrong-staple|right-horse/, 'the password is never logged');
like($t->redis_cli('DBSIZE'), qr/^0$/m, 'nothing written');
$t->stop_nginx;

# no password at all: NOAUTH, fail=local
$t->start_nginx(http => 'ml_guard_redis unix:%%REDIS_SOCKET%%;', server => $server);
is_deeply([ map { get('n')->{status} } 1 .. 3 ], [ 200, 200, 429 ],
          'missing password, fail=local: limits enforced locally');
ok(wait_for(sub { $t->read_file('logs/error.log') =~ /unavailable: error reply: NOAUTH/ }, 2),
   'NOAUTH logged as an outage');
$t->stop_nginx;

# the right password
$t->start_nginx(http => 'ml_guard_redis unix:%%REDIS_SOCKET%% password=right-horse-battery fail=closed;',
                server => $server);
is_deeply([ map { get('ok')->{status} } 1 .. 3 ], [ 200, 200, 429 ], 'right password: limits in Redis');
like($t->redis_cli('DBSIZE'), qr/^1$/m, 'key written');
$t->stop;

done_testing();

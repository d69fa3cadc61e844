# ml_guard_redis password=: a wrong or missing password is an outage (logged
# once, without the password; fail= applies), the right one works.
# password_file=FILE: the password read at configuration time from a file only
# its owner may access; a file others can read, a missing, empty or binary one
# fails `nginx -t` with file:line, and the password never appears in a message
# or log.
use strict;
use warnings;
use Test::More;
use lib 't/lib';
use MLGuard::Test qw(wait_for);

my $secret = 'right-horse-battery';
my $t = MLGuard::Test->new;
$t->start_redis(password => $secret);
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
$t->stop_nginx;
$t->redis_cli('FLUSHALL');

# --- password_file= ---
my $dir = $t->dir;
sub redis_line { "ml_guard_redis unix:%%REDIS_SOCKET%% $_[0] fail=closed;" }

# --- refused at nginx -t ---
sub refused {
    my ($name, $args, $re) = @_;
    my ($ok, $out) = $t->nginx_test(http => redis_line($args), server => $server);
    ok(!$ok, "$name: nginx -t fails");
    like($out, $re, "$name: message") or diag $out;
    like($out, qr/in \Q$dir\E\/conf\/nginx\.conf:\d+/, "$name: names the file and line");
    unlike($out, qr/horse|hidden-word/, "$name: no secret in the message");
}

$t->write_file('pw-group', "$secret\n", 0640);
refused('readable by the group', "password_file=$dir/pw-group",
        qr/password_file "\Q$dir\E\/pw-group" must not be accessible to group or others \(mode 0640; chmod 600 it\)/);
$t->write_file('pw-other', "$secret\n", 0604);
refused('readable by others', "password_file=$dir/pw-other", qr/pw-other" must not be accessible .*mode 0604/);
$t->write_file('pw-gw', "$secret\n", 0620);
refused('writable by the group', "password_file=$dir/pw-gw", qr/pw-gw" must not be accessible .*mode 0620/);
refused('missing file', "password_file=$dir/nope", qr/password_file "\Q$dir\E\/nope": cannot open: No such file/);
$t->write_file('pw-empty', '', 0600);
refused('empty file', "password_file=$dir/pw-empty", qr/pw-empty" is empty/);
$t->write_file('pw-nl', "\n", 0600);
refused('only a newline', "password_file=$dir/pw-nl", qr/pw-nl" is empty/);
$t->write_file('pw-two', "right-horse\nhidden-word\n", 0600);
refused('two lines', "password_file=$dir/pw-two",
        qr/pw-two" holds a control character \(only one final newline is allowed\)/);
$t->write_file('pw-tab', "right\thorse", 0600);
refused('a tab', "password_file=$dir/pw-tab", qr/pw-tab" holds a control character/);
$t->write_file('pw-nul', "right\0horse\n", 0600);
refused('a NUL byte', "password_file=$dir/pw-nul", qr/pw-nul" holds a control character/);
$t->write_file('pw-big', ('horse' x 1000) . "\n", 0600);
refused('too long', "password_file=$dir/pw-big", qr/pw-big" is longer than 4096 bytes/);
mkdir "$dir/pw-dir", 0700;
refused('a directory', "password_file=$dir/pw-dir", qr/pw-dir" is not a regular file/);
$t->write_file('pw-ok', "$secret\n", 0600);
refused('both password= and password_file=', "password=right-horse password_file=$dir/pw-ok",
        qr/password= and password_file= are mutually exclusive/);
refused('password_file= twice', "password_file=$dir/pw-ok password_file=$dir/pw-ok",
        qr/password_file= given twice/);
refused('empty password_file=', 'password_file=', qr/ml_guard_redis: empty password_file=/);

# --- the right password from a file ---
my ($ok, $out) = $t->nginx_test(http => redis_line("password_file=$dir/pw-ok"), server => $server);
ok($ok, 'a 0600 file passes nginx -t') or diag $out;
$t->start_nginx(http => redis_line("password_file=$dir/pw-ok"), server => $server);
is_deeply([ map { get('ok')->{status} } 1 .. 3 ], [ 200, 200, 429 ], 'password from the file: limits in Redis');
like($t->redis_cli('DBSIZE'), qr/^1$/m, 'key written');
$t->stop_nginx;

# relative to nginx's configuration directory, without a final newline, through a symlink
$t->write_file('conf/redis.pass', $secret, 0600);
symlink "$dir/conf/redis.pass", "$dir/conf/redis.link" or die $!;
$t->start_nginx(http => redis_line('password_file=redis.link'), server => $server);
is_deeply([ map { get('rel')->{status} } 1 .. 3 ], [ 200, 200, 429 ],
          'relative path (conf dir), no final newline, a symlink to a 0600 file');
$t->stop_nginx;

# a wrong password from a file is an outage like a wrong password=, never logged
$t->write_file('pw-wrong', "wrong-staple-hidden-word\n", 0600);
$t->start_nginx(http => redis_line("password_file=$dir/pw-wrong"), server => $server);
is(get('w')->{status}, 503, 'wrong password in the file, fail=closed: 503');
ok(wait_for(sub { $t->read_file('logs/error.log') =~ /AUTH refused: WRONGPASS/ }, 5), 'the AUTH refusal is logged');
$t->stop_nginx;
unlike($t->read_file('logs/error.log'), qr/horse|hidden-word|staple/, 'no password in the error log');
$t->stop;

done_testing();

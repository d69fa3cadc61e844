# ml_guard_redis password_file=FILE: the Redis password read at configuration
# time from a file only its owner may read; a file others can read, a missing,
# empty or binary one fails `nginx -t` with file:line, and the password never
# appears in a message or log.
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
my $dir = $t->dir;
sub redis_line { "ml_guard_redis unix:%%REDIS_SOCKET%% $_[0] fail=closed;" }
sub get { $t->request(GET => '/a', headers => { 'X-K' => $_[0] }) }

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

# The harness itself: a test must talk to its own nginx.  When something else
# already listens on the port reserved for nginx, start_nginx fails loudly
# instead of letting the test's requests reach the other listener (which once
# made t/inherit.t's requests land on an echo server and get 200s).
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use IO::Socket::INET;
use MLGuard::Test qw(free_port);

my %seen;
my @ports = map { free_port() } 1 .. 50;
$seen{$_}++ for @ports;
is(scalar(keys %seen), 50, 'free_port never hands out a port twice in one process');

my $t = MLGuard::Test->new;
my $echo = $t->start_echo;
isnt($echo, '127.0.0.1:' . $t->port, 'the echo server does not take the port reserved for nginx');

my $squatter = IO::Socket::INET->new(Listen => 8, LocalAddr => '127.0.0.1', LocalPort => $t->port,
                                     Proto => 'tcp', ReuseAddr => 1)
    or die "cannot take the port: $!";
my $started = eval { $t->start_nginx(server => 'location / { return 204; }'); 1 };
ok(!$started, 'nginx cannot bind its port: start_nginx fails');
like($@, qr/nginx did not start/, '... saying so');
like($t->read_file('logs/error.log'), qr/bind\(\) to 127\.0\.0\.1:\d+ failed/, '... and nginx logged the bind failure');

close $squatter;
ok(eval { $t->start_nginx(server => 'location / { return 204; }'); 1 }, 'with the port free it starts')
    or diag($@);
is($t->request(GET => '/')->{status}, 204, 'and answers itself');

$t->stop;

# module => PATH: another build of the module (a benchmark's baseline) is the
# one nginx loads
my $other = MLGuard::Test->new->write_file('other.so', do {
    open my $fh, '<:raw', MLGuard::Test::module_path() or die $!;
    local $/;
    <$fh>;
});
my $b = MLGuard::Test->new(module => $other);
ok(eval { $b->start_nginx(server => 'location / { ml_guard on; ml_guard_auth none; return 204; }'); 1 },
   'module => PATH: nginx starts with that build') or diag($@);
my ($worker) = $b->worker_pids;
like(do { open my $fh, '<', "/proc/$worker/maps" or die $!; local $/; <$fh> }, qr/\Q$other\E/,
     '... and its worker has that file mapped');
$b->stop;

my $missing = MLGuard::Test->new(module => '/nonexistent/ngx_http_ml_guard_module.so');
ok(!eval { $missing->start_nginx(server => 'location / { return 204; }'); 1 }, 'a missing module: nginx does not start');
like($@, qr{/nonexistent/ngx_http_ml_guard_module\.so}, '... naming the file');

done_testing;

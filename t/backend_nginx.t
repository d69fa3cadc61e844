# nginx in front of the backend: proxy_pass over the Unix socket with upstream
# keep-alive, as the gateway deploys it (the module's own checks are tested
# elsewhere; here ml_guard is off).
use strict;
use warnings;
use Test::More;
use lib 't/lib';
use MLGuard::Test;
use MLGuard::Backend;

my $b = MLGuard::Backend->start(models => ['conf/models/iris.mlgf'], threads => 2);
my $sock = $b->socket_path;
my $t = MLGuard::Test->new;
$t->start_nginx(http => qq{
    upstream backend { server unix:$sock; keepalive 4; }
}, server => q{
    location / {
        proxy_pass http://backend;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
    }
});

my $ok = 0;
for (1 .. 20) {
    my $r = $t->request(POST => '/predict', headers => { 'Content-Type' => 'application/json' },
                        body => '{"input":[[5.1,3.5,1.4,0.2],[6.7,3.0,5.2,2.3]]}');
    $ok++ if $r->{status} == 200 && $r->{content} eq '{"prediction":[0,2]}';
}
is($ok, 20, '20 predictions through nginx over the Unix socket');
my $r = $t->request(POST => '/v2/models/iris/infer', body => '{"inputs":[{"shape":[1,3],"data":[1,2,3]}]}');
is($r->{status}, 400, 'backend 400 passes through');
like($r->{json}{error}, qr/wrong feature count/, 'with its error');
$r = $t->request(GET => '/v2/models/iris/ready');
is($r->{status}, 200, 'OIP readiness through nginx');
$t->stop;
is($b->stop, 0, 'backend exits cleanly');
done_testing;

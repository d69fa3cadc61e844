# ml_guard_metrics: Prometheus text, counters shared by all workers.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use MLGuard::Test qw(sha256_hex_of random_key wait_for);
use MLGuard::JWT;

my $t = MLGuard::Test->new(workers => 2);
my %k = map { $_ => random_key() } qw(alice bob);
$t->write_file('keys.txt', "alice " . sha256_hex_of($k{alice}) . " predict\nbob " . sha256_hex_of($k{bob}) . "\n");
my $secret = 's' x 40;
$t->write_file('jwt-secret', $secret);
$t->start_echo;
$t->start_nginx(server => q{
    location /predict {
        ml_guard on;
        ml_guard_api_keys %%DIR%%/keys.txt;
        ml_guard_roles predict;
        ml_guard_max_body 10;
        proxy_pass http://%%ECHO%%;
    }
    location /jwt {
        ml_guard on;
        ml_guard_jwt_key %%DIR%%/jwt-secret alg=HS256;
        proxy_pass http://%%ECHO%%;
    }
    location = /metrics { ml_guard_metrics; }
});

sub metrics {
    my $r = $t->request(GET => '/metrics');
    my %m;
    for (split /\n/, $r->{content} // '') {
        next if /^#/;
        my ($name, $value) = /^(\S+)\s+(\S+)$/ or next;
        $m{$name} = $value;
    }
    return ($r, \%m);
}

my ($r, $m) = metrics();
is $r->{status}, 200, 'metrics served';
like $r->{headers}{'content-type'}, qr{^text/plain; version=0\.0\.4}, 'Prometheus text format';
like $r->{content}, qr/^# TYPE ml_guard_requests_total counter$/m, 'TYPE lines';
is $m->{'ml_guard_requests_total{decision="allow",reason=""}'}, 0, 'nothing counted yet';

for (1 .. 20) { $t->request(POST => '/predict', headers => {'X-API-Key' => $k{alice}}, body => '{}') }
for (1 .. 7)  { $t->request(POST => '/predict', body => '{}') }
for (1 .. 5)  { $t->request(POST => '/predict', headers => {'X-API-Key' => random_key()}, body => '{}') }
for (1 .. 3)  { $t->request(POST => '/predict', headers => {'X-API-Key' => $k{bob}}, body => '{}') }
for (1 .. 2)  { $t->request(POST => '/predict', headers => {'X-API-Key' => $k{alice}}, body => 'x' x 11) }

($r, $m) = metrics();
is $m->{'ml_guard_requests_total{decision="allow",reason=""}'}, 20, 'allowed requests from both workers';
is $m->{'ml_guard_requests_total{decision="deny",reason="missing_credentials"}'}, 7, 'missing credentials';
is $m->{'ml_guard_requests_total{decision="deny",reason="invalid_api_key"}'}, 5, 'invalid keys';
is $m->{'ml_guard_requests_total{decision="deny",reason="role_denied"}'}, 3, 'role denials';
is $m->{'ml_guard_requests_total{decision="deny",reason="body_too_large"}'}, 2, 'body caps';
is $m->{'ml_guard_auth_failures_total'}, 5, 'refused credentials counted';
is $m->{'ml_guard_decision_duration_seconds_count'}, 37, 'every decision timed';
is $m->{'ml_guard_decision_duration_seconds_bucket{le="+Inf"}'}, 37, '+Inf bucket holds all';
like $m->{'ml_guard_decision_duration_seconds_sum'}, qr/^\d+\.\d{6}$/, 'sum in seconds';
my $prev = 0;
my $mono = 1;
for my $le (qw(0.00005 0.0001 0.00025 0.0005 0.001 0.0025 0.005 0.01 0.025 0.05 0.1 1)) {
    my $v = $m->{qq{ml_guard_decision_duration_seconds_bucket{le="$le"}}};
    $mono = 0 unless defined $v && $v >= $prev;
    $prev = $v // 0;
}
ok $mono, 'histogram buckets are cumulative';
ok exists $m->{'ml_guard_ratelimit_checks_total{outcome="limited"}'}, 'rate-limit outcomes listed';
ok exists $m->{'ml_guard_redis_connected_workers'}, 'redis gauge listed';

# JWT cache lookups: one worker, so one miss then hits
{
    my $jt = MLGuard::Test->new(workers => 1);
    $jt->write_file('jwt-secret', $secret);
    $jt->{echo_addr} = $t->echo_addr;
    $jt->start_nginx(server => q{
        location /jwt { ml_guard on; ml_guard_jwt_key %%DIR%%/jwt-secret alg=HS256; proxy_pass http://%%ECHO%%; }
        location = /metrics { ml_guard_metrics; }
    });
    my $tok = MLGuard::JWT->new($jt->dir)->token(alg => 'HS256', secret => $secret, claims => { sub => 'svc' });
    is $jt->request(GET => '/jwt', headers => { Authorization => "Bearer $tok" })->{status}, 200, 'JWT allowed'
        for 1 .. 3;
    my $text = $jt->request(GET => '/metrics')->{content};
    like $text, qr/^ml_guard_jwt_cache_total\{result="miss"\} 1$/m, 'one cache miss';
    like $text, qr/^ml_guard_jwt_cache_total\{result="hit"\} 2$/m, 'then cache hits';
    $jt->stop;
}

# counters survive a reload (same zone)
$t->reload_nginx;
($r, $m) = metrics();
is $m->{'ml_guard_requests_total{decision="allow",reason=""}'}, 20, 'counters survive a reload';

$r = $t->request(POST => '/metrics', body => 'x');
is $r->{status}, 405, 'metrics only for GET/HEAD';

$t->stop;
done_testing;

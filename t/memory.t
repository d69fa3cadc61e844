# Memory: worker RSS after 200k requests through the full policy (API keys,
# JWT with its cache, body cap, schema, Redis rate limit) grows by less than
# 4 MiB.  Load comes from wrk; requests are counted from its output.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use MLGuard::Test qw(sha256_hex_of random_key wait_for);
use MLGuard::Backend;
use MLGuard::JWT;

my $root = MLGuard::Test::root();
plan skip_all => 'backend not built' unless -x "$root/build/ml-guard-backend";
plan skip_all => 'wrk not installed' unless system('sh', '-c', 'command -v wrk >/dev/null') == 0;
plan skip_all => 'RSS is not meaningful under AddressSanitizer' if $ENV{MLG_ASAN};

my $t = MLGuard::Test->new(workers => 1);
my $key = random_key();
my $secret = join '', map { chr(48 + rand 75) } 1 .. 48;
$t->write_file('keys.txt', "mem " . sha256_hex_of($key) . " predict\n");
$t->write_file('jwt-secret', $secret);
$t->start_redis;
my $backend = MLGuard::Backend->start(models => ["$root/conf/models/iris.mlgf"], threads => 1);
my $sock = $backend->socket_path;
$t->start_nginx(
    http => qq{
        access_log off;
        ml_guard_redis unix:%%REDIS_SOCKET%% timeout=100ms fail=local;
        upstream model { server unix:$sock; keepalive 16; }
    },
    server => q{
        location = /predict {
            ml_guard on;
            ml_guard_auth api_key jwt;
            ml_guard_api_keys %%DIR%%/keys.txt;
            ml_guard_jwt_key %%DIR%%/jwt-secret alg=HS256;
            ml_guard_roles predict;
            ml_guard_max_body 16k;
            ml_guard_schema %%ROOT%%/conf/schemas/iris.json;
            ml_guard_rate_limit 1000000r/s burst=1000000;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_pass http://model/predict;
        }
    });

my $jwt = MLGuard::JWT->new($t->dir);
# a few distinct tokens so the per-worker cache sees inserts and hits
my @tokens = map { $jwt->token(alg => 'HS256', secret => $secret,
                               claims => { sub => "svc$_", roles => ['predict'], exp => time + 3600 }) } 1 .. 50;
my $lua = $t->write_file('load.lua', <<"EOT");
local tokens = { @{[ join ', ', map { "'$_'" } @tokens ]} }
local n = 0
request = function()
    n = n + 1
    local headers = { ["Content-Type"] = "application/json" }
    if n % 2 == 0 then
        headers["X-API-Key"] = "$key"
    else
        headers["Authorization"] = "Bearer " .. tokens[(n % #tokens) + 1]
    end
    return wrk.format("POST", "/predict", headers, '{"input": [5.1, 3.5, 1.4, 0.2]}')
end
EOT

my $r = $t->request(POST => '/predict', headers => { 'X-API-Key' => $key, 'Content-Type' => 'application/json' },
                    body => '{"input": [5.1, 3.5, 1.4, 0.2]}');
is $r->{status}, 200, 'full policy answers';

sub worker_rss_kb {
    my $kb = 0;
    for my $pid ($t->worker_pids) {
        open my $sf, '<', "/proc/$pid/status" or next;
        for (<$sf>) { $kb += $1 if /^VmRSS:\s+(\d+) kB/ }
    }
    return $kb;
}

sub load {
    my ($n) = @_;
    my ($done, $bad) = (0, 0);
    while ($done < $n) {
        my $out = `wrk -t1 -c16 -d2s -s $lua @{[ $t->url('/') ]} 2>&1`;
        my ($count) = $out =~ /(\d+) requests in/ or die "wrk: $out";
        my ($non2xx) = $out =~ /Non-2xx or 3xx responses:\s+(\d+)/;
        $done += $count;
        $bad += $non2xx // 0;
    }
    return ($done, $bad);
}

my ($warm, $warm_bad) = load(20_000);
my $before = worker_rss_kb();
my ($done, $bad) = load(200_000);
my $after = worker_rss_kb();
my $growth = ($after - $before) / 1024;
diag sprintf 'worker RSS %.1f MiB after %d warm-up requests, %.1f MiB after %d more (%+.2f MiB)',
    $before / 1024, $warm, $after / 1024, $done, $growth;
cmp_ok $before, '>', 0, 'the workers\' RSS was read';
is $bad + $warm_bad, 0, 'every request was allowed';
cmp_ok $done, '>=', 200_000, '200k requests sent';
cmp_ok $growth, '<', 4, 'worker RSS grew by less than 4 MiB';

$backend->stop;
$t->stop;
done_testing;

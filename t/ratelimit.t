# ml_guard_rate_limit through a real nginx and a real redis-server: burst,
# sustained rate, headers and Retry-After, per-key isolation, default keys
# (principal, else address), two limits on one location (a denial consumes
# nothing), $ml_guard_ratelimit_remaining, inheritance, local limits without
# Redis, and configuration errors caught by nginx -t.
use strict;
use warnings;
use Test::More;
use Time::HiRes qw(time sleep);
use lib 't/lib';
use MLGuard::Test qw(wait_for sha256_hex_of random_key);

my $t = MLGuard::Test->new;
$t->start_redis;
$t->start_echo;

my %key = (alice => random_key(), bob => random_key());
$t->write_file('keys.txt', join '', map { "$_ " . sha256_hex_of($key{$_}) . " predict\n" } sort keys %key);

my $locations = q{
    location /burst {
        ml_guard on; ml_guard_auth none;
        ml_guard_rate_limit 1r/m burst=4;
        add_header X-Remaining $ml_guard_ratelimit_remaining always;
        proxy_pass http://%%ECHO%%;
    }
    location /rate {
        ml_guard on; ml_guard_auth none;
        ml_guard_rate_limit 10r/s key=$http_x_k;
        proxy_pass http://%%ECHO%%;
    }
    location /tenant {
        ml_guard on; ml_guard_auth none;
        ml_guard_rate_limit 1r/m burst=1 key=$http_x_tenant;
        proxy_pass http://%%ECHO%%;
    }
    location /keyed {
        ml_guard on; ml_guard_api_keys %%DIR%%/keys.txt;
        ml_guard_rate_limit 1r/m burst=1;
        proxy_pass http://%%ECHO%%;
    }
    location /two {
        ml_guard on; ml_guard_auth none;
        ml_guard_rate_limit 1r/m burst=9 key=$http_x_k;
        ml_guard_rate_limit 3r/h burst=2 key=$http_x_k;
        proxy_pass http://%%ECHO%%;
    }
    location /one {
        ml_guard on; ml_guard_auth none;
        ml_guard_rate_limit 1r/m burst=9 key=$http_x_k;
        proxy_pass http://%%ECHO%%;
    }
    location /inherit {
        ml_guard on; ml_guard_auth none;
        proxy_pass http://%%ECHO%%;
    }
    location /nolimit {
        ml_guard on; ml_guard_auth none;
        ml_guard_rate_limit 1r/s burst=1000 key=$http_x_k;
        proxy_pass http://%%ECHO%%;
    }
};

$t->start_nginx(
    http => 'ml_guard_redis unix:%%REDIS_SOCKET%%;',
    server => "ml_guard_rate_limit 1r/m burst=1 key=\$http_x_k;\n$locations",
);

sub get {
    my ($path, %h) = @_;
    return $t->request(GET => $path, headers => \%h);
}

# --- burst, headers, Retry-After ----------------------------------------------
{
    my @r = map { get('/burst') } 1 .. 7;
    is_deeply([ map { $_->{status} } @r ], [ 200, 200, 200, 200, 200, 429, 429 ],
              '1r/m burst=4: 5 allowed at once, then 429');
    is_deeply([ map { $_->{headers}{'ratelimit-remaining'} } @r[0 .. 4] ], [ 4, 3, 2, 1, 0 ],
              'RateLimit-Remaining counts down');
    is_deeply([ map { $_->{headers}{'x-remaining'} } @r[0 .. 4] ], [ 4, 3, 2, 1, 0 ],
              '$ml_guard_ratelimit_remaining matches');
    is($r[0]{headers}{'ratelimit-limit'}, 5, 'RateLimit-Limit = burst + 1');
    is($r[0]{headers}{'ratelimit-reset'}, 60, 'RateLimit-Reset after the first: 60 s');
    is($r[4]{headers}{'ratelimit-reset'}, 300, 'RateLimit-Reset after the fifth: 300 s');
    my $d = $r[5];
    is($d->{headers}{'retry-after'}, 60, 'Retry-After 60 (seconds, rounded up)');
    like($d->{headers}{'content-type'}, qr{^application/problem\+json}, 'problem+json');
    is($d->{json}{reason}, 'rate_limited', 'reason rate_limited');
    is($d->{json}{status}, 429, 'status in body');
    is($d->{headers}{'ratelimit-remaining'}, 0, '429 carries RateLimit-Remaining 0');
    ok(!defined $r[0]{headers}{'retry-after'}, 'no Retry-After on allowed responses');
    # nginx writes the access log line after the response is sent
    my $n429 = sub { scalar(() = $t->read_file('logs/access.log') =~ m{"GET /burst HTTP/1.1" 429}g) };
    wait_for(sub { $n429->() >= 2 });
    is($n429->(), 2, 'access log: two 429s');
}

# --- sustained rate ---------------------------------------------------------------
{
    my $a = get('/rate', 'X-K' => 'sus');
    is($a->{status}, 200, '10r/s: first allowed');
    my $b = get('/rate', 'X-K' => 'sus');
    is($b->{status}, 429, '10r/s burst=0: second at once denied');
    is($b->{headers}{'retry-after'}, 1, 'Retry-After rounds 100 ms up to 1 s');
    ok(wait_for(sub { get('/rate', 'X-K' => 'sus')->{status} == 200 }, 2),
       'allowed again after the interval');
    my ($ok, $n, $t0) = (0, 0, time);
    while (time - $t0 < 1.0) {
        $ok++ if get('/rate', 'X-K' => 'sus2')->{status} == 200;
        $n++;
        sleep 0.02;
    }
    my $elapsed = time - $t0;
    my $max = int($elapsed / 0.1) + 1;
    ok($ok <= $max && $ok >= $max / 2,
       "sustained: $ok of $n allowed in " . sprintf('%.2f', $elapsed) . " s (at most $max)");
}

# --- per-key isolation ----------------------------------------------------------------
{
    my @a = map { get('/tenant', 'X-Tenant' => 'acme')->{status} } 1 .. 3;
    my @b = map { get('/tenant', 'X-Tenant' => 'globex')->{status} } 1 .. 3;
    is_deeply(\@a, [ 200, 200, 429 ], 'tenant acme: 2 then 429');
    is_deeply(\@b, [ 200, 200, 429 ], 'tenant globex has its own budget');
    my @none = map { get('/tenant')->{status} } 1 .. 4;
    is_deeply(\@none, [ (200) x 4 ], 'empty key= value is not limited (as limit_req)');
    my @evil = map { get('/tenant', 'X-Tenant' => "acme}:{x\tFLUSHALL")->{status} } 1 .. 2;
    is_deeply(\@evil, [ 200, 200 ], 'a hostile value is just another key');

    my @al = map { get('/keyed', 'X-API-Key' => $key{alice})->{status} } 1 .. 3;
    my @bo = map { get('/keyed', 'X-API-Key' => $key{bob})->{status} } 1 .. 3;
    is_deeply(\@al, [ 200, 200, 429 ], 'default key: principal alice limited');
    is_deeply(\@bo, [ 200, 200, 429 ], 'principal bob has his own budget (same address)');

    my $keys = $t->redis_cli('--scan', '--pattern', '*');
    my @k = split /\n/, $keys;
    ok(@k >= 5, scalar(@k) . ' keys in Redis');
    is(scalar(grep { !/^mlg:\{[0-9a-f]{32}\}:\d+r\/[smhd]:b\d+$/ } @k), 0,
       'every key is mlg:{hash}:RATE:bBURST') or diag $keys;
    unlike($keys, qr/acme|globex|alice|bob/, 'client values never appear in keys');
    my $ttl = $t->redis_cli('PTTL', (grep { /1r\/m:b1$/ } @k)[0]);
    ok($ttl > 0 && $ttl <= 120_000, "keys expire ($ttl ms)");
}

# --- two limits on one location -------------------------------------------------------
{
    my @r = map { get('/two', 'X-K' => 'two') } 1 .. 8;
    is_deeply([ map { $_->{status} } @r ], [ 200, 200, 200, (429) x 5 ],
              'two limits: the tighter (3r/h burst=2) denies the 4th');
    is_deeply([ map { $_->{headers}{'ratelimit-remaining'} } @r[0 .. 2] ], [ 2, 1, 0 ],
              'headers describe the tightest limit');
    is($r[0]{headers}{'ratelimit-limit'}, 3, 'RateLimit-Limit of the tightest limit');
    ok($r[3]{headers}{'retry-after'} > 1190 && $r[3]{headers}{'retry-after'} <= 1200,
       "Retry-After from the denying limit ($r[3]{headers}{'retry-after'} s)");
    # /one shares the 1r/m burst=9 limit (same rate, burst and key): the three
    # allowed requests used 3 of its 10; the five denied ones used nothing
    my @one = map { get('/one', 'X-K' => 'two')->{status} } 1 .. 10;
    is(scalar(grep { $_ == 200 } @one), 7, 'denied requests consumed no budget of the other limit');
}

# --- inheritance -----------------------------------------------------------------------
{
    my @r = map { get('/inherit', 'X-K' => 'inh')->{status} } 1 .. 3;
    is_deeply(\@r, [ 200, 200, 429 ], 'server-level limit inherited');
    @r = map { get('/nolimit', 'X-K' => 'inh')->{status} } 1 .. 5;
    is_deeply(\@r, [ (200) x 5 ], 'a location with its own limit replaces it');
}

$t->stop;

# --- without ml_guard_redis: local limits ------------------------------------------------
{
    my $l = MLGuard::Test->new;
    $l->start_echo;
    $l->start_nginx(server => q{
        location /a { ml_guard on; ml_guard_auth none;
                      ml_guard_rate_limit 1r/m burst=4; proxy_pass http://%%ECHO%%; }
    });
    my @r = map { $l->request(GET => '/a') } 1 .. 7;
    is_deeply([ map { $_->{status} } @r ], [ (200) x 5, 429, 429 ], 'no Redis: exact local limit');
    is($r[5]{headers}{'retry-after'}, 60, 'local: Retry-After 60');
    is_deeply([ map { $_->{headers}{'ratelimit-remaining'} } @r[0 .. 4] ], [ 4, 3, 2, 1, 0 ],
              'local: same headers');
    $l->stop;
}

# --- configuration errors ------------------------------------------------------------------
{
    my $c = MLGuard::Test->new;
    my @bad = (
        [ server => 'location / { ml_guard_rate_limit 10r/x; }', qr/ml_guard_rate_limit: invalid "10r\/x"/ ],
        [ server => 'location / { ml_guard_rate_limit 0r/s; }', qr/invalid "0r\/s"/ ],
        [ server => 'location / { ml_guard_rate_limit 10r/s burst=-1; }', qr/invalid "burst=-1"/ ],
        [ server => 'location / { ml_guard_rate_limit 1r/m burst=1000000000; }', qr/burst too large/ ],
        [ server => 'location / { ml_guard_rate_limit 10r/s zone=x; }', qr/invalid parameter "zone=x"/ ],
        [ server => 'location / { ml_guard_rate_limit 10r/s key=; }', qr/empty key=/ ],
        [ server => 'location / { ml_guard_rate_limit 10r/s key=$nonexistent_var; }', qr/unknown "nonexistent_var" variable/ ],
        [ server => 'location / { ' . ('ml_guard_rate_limit 1r/s; ' x 17) . '}', qr/at most 16/ ],
        [ server => 'ml_guard_redis 127.0.0.1:6379;', qr/"ml_guard_redis" directive is not allowed here/ ],
        [ http => 'ml_guard_redis 127.0.0.1;', qr/invalid address/ ],
        [ http => 'ml_guard_redis unix:relative.sock;', qr/absolute path/ ],
        [ http => 'ml_guard_redis 127.0.0.1:6379 timeout=0;', qr/invalid parameter "timeout=0"/ ],
        [ http => 'ml_guard_redis 127.0.0.1:6379 fail=maybe;', qr/invalid parameter "fail=maybe"/ ],
        [ http => 'ml_guard_redis 127.0.0.1:6379 db=x;', qr/invalid parameter "db=x"/ ],
        [ http => "ml_guard_redis 127.0.0.1:6379;\nml_guard_redis 127.0.0.1:6380;", qr/is duplicate/ ],
        [ server => 'location / { ml_guard_auth_failures 5r/m; }', qr/invalid number of arguments/ ],
        [ server => 'location / { ml_guard_auth_failures 5r/m 10m; }', qr/expected ban=TIME/ ],
        [ server => 'location / { ml_guard_auth_failures 5r/m ban=forever; }', qr/invalid ban time/ ],
        [ server => 'location / { ml_guard_auth_failures 5/m ban=1m; }', qr/ml_guard_auth_failures: invalid "5\/m"/ ],
    );
    for my $b (@bad) {
        my ($where, $text, $re) = @$b;
        my ($ok, $out) = $c->nginx_test($where => $text);
        ok(!$ok, "nginx -t rejects: $text");
        like($out, $re, '... with a clear message') or diag $out;
        like($out, qr/nginx\.conf:\d+/, '... naming file:line') if $re !~ /not allowed|unknown/;
    }
    my ($ok, $out) = $c->nginx_test(
        http => 'ml_guard_redis unix:/tmp/x.sock timeout=200ms fail=closed password=s3cret db=2;',
        server => 'location / { ml_guard_rate_limit 20r/s burst=5 key=$binary_remote_addr; '
                . 'ml_guard_rate_limit 10000r/d; ml_guard_auth_failures 5r/m ban=10m; }');
    ok($ok, 'a full valid configuration passes nginx -t') or diag $out;
    for my $addr ('localhost:6379', '[::1]:6379', 'unix:/run/redis/redis.sock') {
        ($ok, $out) = $c->nginx_test(http => "ml_guard_redis $addr;");
        ok($ok, "ml_guard_redis $addr accepted") or diag $out;
    }
    ($ok, $out) = $c->nginx_test(http => 'ml_guard_redis 127.0.0.1:6379 password=;');
    ok(!$ok && $out !~ /s3cret/, 'empty password= rejected');
}

done_testing();

# Attacks on JWT verification through nginx: tampering, alg none,
# HS256 keyed with the RSA public key PEM, algorithm family swaps, forged
# headers, garbage and oversized tokens.  Every one is a 401 invalid_token
# that echoes nothing of the token.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use MLGuard::Test qw(random_key);
use MLGuard::JWT qw(b64url b64url_decode);
use JSON::PP;

my $t = MLGuard::Test->new;
my $k = MLGuard::JWT->new($t->dir);

my $secret = random_key(48);
$t->write_file('hs.secret', $secret);
$k->rsa('rsa1');
$k->rsa('other');
$k->ec('ec256', 'P-256');
$t->write_file('jwks.json', $k->jwks_json($k->jwk('rsa1', kid => 'a', alg => 'RS256')));

$t->start_echo;
my $pass = 'proxy_pass http://%%ECHO%%;';
$t->start_nginx(
    http => 'large_client_header_buffers 4 32k;',
    server => qq{
        location /rs { ml_guard on; ml_guard_jwt_key %%DIR%%/rsa1.pub.pem alg=RS256; $pass }
        location /es { ml_guard on; ml_guard_jwt_key %%DIR%%/ec256.pub.pem; $pass }
        location /hs { ml_guard on; ml_guard_jwt_key %%DIR%%/hs.secret; $pass }
        location /jwks { ml_guard on; ml_guard_jwt_key %%DIR%%/jwks.json; $pass }
    });

sub refused {
    my ($path, $token, $name) = @_;
    my $res = $t->request(GET => $path, headers => { Authorization => "Bearer $token" });
    my $reason = $res->{json} ? $res->{json}{reason} // '' : '';
    my $ok = is "$res->{status} $reason", '401 invalid_token', $name;
    diag substr($res->{content} // '', 0, 300) unless $ok;
    # nothing of the token comes back: neither its parts nor its claims
    my $leak = 0;
    for my $part (grep { length > 8 } split /\./, $token) {
        $leak = 1 if index($res->{content} // '', substr($part, 0, 16)) >= 0;
    }
    ok !$leak, "$name: token not echoed";
    return $res;
}

my $rs_good = $k->token(alg => 'RS256', key => 'rsa1');
is $t->request(GET => '/rs', headers => { Authorization => "Bearer $rs_good" })->{status}, 200,
    'baseline: RS256 token accepted';
my ($h64, $p64, $s64) = split /\./, $rs_good;

# tampering
my $payload = JSON::PP->new->canonical->encode({ sub => 'admin', exp => time + 300, roles => ['admin'] });
refused('/rs', join('.', $h64, b64url($payload), $s64), 'tampered payload');
my $sig = b64url_decode($s64);
substr($sig, 10, 1) = chr(ord(substr($sig, 10, 1)) ^ 1);
refused('/rs', join('.', $h64, $p64, b64url($sig)), 'flipped signature bit');
refused('/rs', join('.', $h64, $p64, b64url(substr(b64url_decode($s64), 0, 128))), 'truncated signature');
refused('/rs', $k->token(alg => 'RS256', key => 'other'), 'signed by another key');

# alg none
my $none = $k->token(alg => 'none');
like $none, qr/\.$/, 'alg none token ends with a dot';
refused('/rs', $none, 'alg none with trailing dot at RS256');
(my $none2 = $none) =~ s/\.$//;
refused('/rs', $none2, 'alg none without trailing dot at RS256');
refused('/hs', $none, 'alg none at HS256');
refused('/jwks', $k->token(alg => 'none', header => { kid => 'a' }), 'alg none naming a JWKS kid');
refused('/rs', $k->token(alg => 'none', sign_alg => 'RS256', key => 'rsa1'), 'alg none with a real RS256 signature');
refused('/rs', $k->token(alg => 'None', sign_alg => 'none'), 'alg None');

# algorithm confusion: HS256 keyed with the public key file the attacker has
my $pem = $k->pub_pem('rsa1');
refused('/rs', $k->token(alg => 'HS256', secret => $pem), 'HS256 signed with the RSA public key PEM at RS256');
(my $pem_nonl = $pem) =~ s/\n$//;
refused('/rs', $k->token(alg => 'HS256', secret => $pem_nonl), 'HS256 signed with the PEM (no final newline)');
refused('/rs', $k->token(alg => 'HS512', secret => $pem), 'HS512 signed with the PEM');
refused('/jwks', $k->token(alg => 'HS256', secret => $t->read_file('jwks.json'), header => { kid => 'a' }),
        'HS256 signed with the JWKS text');

# family and size swaps
refused('/rs', $k->token(alg => 'ES256', key => 'ec256'), 'ES256 token at an RS256 location');
refused('/es', $k->token(alg => 'RS256', key => 'rsa1'), 'RS256 token at an ES256 location');
refused('/rs', $k->token(alg => 'RS512', key => 'rsa1'), 'RS512 token at an RS256-pinned location');
refused('/rs', $k->token(alg => 'RS256', sign_alg => 'RS512', key => 'rsa1'), 'header RS256, signed RS512');
refused('/hs', $k->token(alg => 'HS512', secret => $secret), 'HS512 at HS256 (pinned by default)');
refused('/es', $k->token(alg => 'ES256', key => 'ec256', raw_header => '{"alg":"ES256","crit":["b64"]}'),
        'crit header');
refused('/hs', $k->token(alg => 'HS256', secret => $secret, raw_header => '{"alg":"HS256","alg":"none"}'),
        'duplicate alg members');
refused('/hs', $k->token(alg => 'HS256', secret => $secret, raw_header => '["HS256"]'), 'header an array');
refused('/hs', $k->token(alg => 'HS256', secret => $secret, payload => '{"sub":"a","sub":"admin","exp":9999999999}'),
        'duplicate sub');

# garbage
my $hs_good = $k->token(alg => 'HS256', secret => $secret);
refused('/hs', '', 'empty token');
refused('/hs', 'abc', 'one part');
refused('/hs', 'abc.def', 'two parts');
refused('/hs', "$hs_good.xyz", 'four parts');
refused('/hs', '.' x 5000, '5000 dots');
refused('/hs', join('.', ('A' x 7000), ('B' x 7000), ('C' x 6480)), '20 KB token');
refused('/hs', substr($hs_good . ('A' x 9000), 0, 8193), 'just over 8 KiB');
(my $padded = $hs_good) .= '=';
refused('/hs', $padded, 'base64 padding');
(my $std = $hs_good) =~ tr/-_/+\//;
refused('/hs', $std =~ m{[+/]} ? $std : "$std+", 'standard base64 alphabet');
refused('/hs', substr($hs_good, 0, 20) . ' ' . substr($hs_good, 20), 'space inside the token');
refused('/hs', 'eyJhbGciOiJIUzI1NiJ9.e30.', 'empty object payload, no signature');

# the endpoint still works after all that
is $t->request(GET => '/hs', headers => { Authorization => "Bearer $hs_good" })->{status}, 200,
    'valid token still accepted';

$t->stop;
done_testing();

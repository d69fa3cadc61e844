# A resumed TLS session carries the client certificate and the verification
# result of the handshake that made it.  ml-guard verifies the certificate of
# a resumed session again against the current CA and CRL, so a certificate
# revoked (CRL updated, nginx reloaded) after the session was made stops
# working at once, while a certificate still valid keeps working over the
# resumed session.  TLS 1.2 and 1.3, with the shared session cache (tickets
# off: session ids, and TLS 1.3 stateful tickets) and with session tickets
# (a ticket key file, so tickets outlive the reload); and a chain with an
# intermediate CA the client sends itself.  `openssl s_client`
# saves and resumes the sessions; nginx's $ssl_session_reused, sent back in
# a response header, shows that the server really resumed the session.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use MLGuard::Test;
use MLGuard::PKI;

my $t = MLGuard::Test->new;
my $dir = $t->dir;
my $ca = MLGuard::PKI->new("$dir/ca", 'ml-guard test CA');
my ($srv_cert, $srv_key) = $ca->issue('localhost', server => 1);
my %client;
$client{good} = [$ca->issue('good.internal')];
my @modes = qw(cache tickets);
my @versions = qw(1.2 1.3);
for my $m (@modes) {
    for my $v (@versions) {
        $client{"$m-$v"} = [$ca->issue("revoked-$m-$v.internal")];
    }
}
my $crl = $ca->crl;

open my $fh, '<', '/dev/urandom' or die $!;
read($fh, my $ticket_key, 80) == 80 or die 'short read';
close $fh;
$t->write_file('ticket.key', $ticket_key);
$t->write_file('mtls-roles.txt', "good.internal predict\n"
    . join('', map { my $m = $_; map { "revoked-$m-$_.internal predict\n" } @versions } @modes));

my %session = (
    cache   => "ssl_session_cache shared:MLG_RESUME:1m;\n    ssl_session_tickets off;",
    tickets => "ssl_session_tickets on;\n    ssl_session_ticket_key %%DIR%%/ticket.key;",
);

sub config {
    my ($mode, %o) = @_;
    my $crl_file = $o{crl} // $crl;
    my $extra = $o{extra} // '';
    return (listen => 'ssl', server => qq{
    ssl_certificate $srv_cert;
    ssl_certificate_key $srv_key;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_client_certificate @{[ $ca->cert ]};
    ssl_verify_client optional;
    ssl_crl $crl_file;
    $session{$mode}
    $extra
    keepalive_requests 10;
    add_header X-Session-Reused \$ssl_session_reused always;

    ml_guard_mtls_roles %%DIR%%/mtls-roles.txt;
    proxy_set_header X-Principal \$ml_guard_principal;

    location /svc {
        ml_guard on;
        ml_guard_auth mtls;
        ml_guard_roles predict;
        proxy_pass http://%%ECHO%%;
    }
});
}

# Two requests on one connection through `openssl s_client`; returns
# { reused => [..], status => [..], reason => [..], principal => [..] }, one
# entry per response (-brief: s_client's own report goes to stderr, so
# stdout holds nothing but the responses).
sub s_client {
    my ($name, $version, %o) = @_;
    my ($cert, $key, $chain) = @{ $client{$name} };
    my $sess = "$dir/$name-$version.sess";
    my $req = "GET /svc HTTP/1.1\r\nHost: localhost\r\n\r\n"
        . "GET /svc HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    $t->write_file('request.txt', $req);
    my @cmd = ('timeout', '20', 'openssl', 's_client', '-connect', '127.0.0.1:' . $t->port,
               $version eq '1.2' ? '-tls1_2' : '-tls1_3', '-cert', $cert, '-key', $key,
               $chain ? ('-cert_chain', $chain) : (),
               '-brief', '-ign_eof', $o{resume} ? ('-sess_in', $sess) : ('-sess_out', $sess));
    my $out = `@{[ join ' ', map { "'$_'" } @cmd ]} < '$dir/request.txt' 2> '$dir/s_client.err'`;
    my %r = (out => $out . $t->read_file('s_client.err'));
    $r{reused} = [ map { $_ eq 'r' ? 1 : 0 } $out =~ m{^X-Session-Reused: (\S+)\r$}mig ];
    $r{status} = [ $out =~ m{^HTTP/1\.1 (\d{3}) }mg ];
    $r{reason} = [ $out =~ m{"reason":"(\w+)"}g ];
    $r{principal} = [ $out =~ m{^X-Echo-H-X-Principal: (\S+)\r$}mig ];
    return \%r;
}

$t->start_echo;
$t->start_nginx(config('cache'));

for my $mode (@modes) {
    $t->reload_nginx(config($mode));

    for my $v (@versions) {
        for my $name ('good', "$mode-$v") {
            my $r = s_client($name, $v);
            is_deeply $r->{reused}, [0, 0], "$mode, TLS $v, $name: a new session" or diag $r->{out};
            is_deeply $r->{status}, [200, 200], "$mode, TLS $v, $name: allowed before the revocation" or diag $r->{out};
            ok -s "$dir/$name-$v.sess", "$mode, TLS $v, $name: session saved";
        }
    }

    $ca->revoke($client{"$mode-$_"}[0]) for @versions;
    $ca->crl;
    $t->reload_nginx(config($mode));

    for my $v (@versions) {
        my $r = s_client("$mode-$v", $v, resume => 1);
        is_deeply $r->{reused}, [1, 1], "$mode, TLS $v, revoked: the session was resumed" or diag $r->{out};
        is_deeply $r->{status}, [401, 401], "$mode, TLS $v, revoked: refused over the resumed session";
        is_deeply $r->{reason}, ['invalid_client_certificate', 'invalid_client_certificate'],
            "$mode, TLS $v, revoked: invalid_client_certificate";
        is_deeply $r->{principal}, [], "$mode, TLS $v, revoked: the model server was not called";

        $r = s_client('good', $v, resume => 1);
        is_deeply $r->{reused}, [1, 1], "$mode, TLS $v, good: the session was resumed" or diag $r->{out};
        is_deeply $r->{status}, [200, 200], "$mode, TLS $v, good: still allowed over the resumed session";
        is_deeply $r->{principal}, ['good.internal', 'good.internal'], "$mode, TLS $v, good: its principal";

        $r = s_client("$mode-$v", $v);
        is_deeply $r->{reused}, [0], "$mode, TLS $v, revoked: a new session";
        is_deeply $r->{status}, [401], "$mode, TLS $v, revoked: refused on a full handshake";
    }
}

# A client certificate from an intermediate CA that the client sends along
# (the server trusts only the root).  A session from the shared cache or a
# ticket keeps only the client's own certificate, so without the
# intermediate among the trusted certificates a resumed session does not
# verify; with it (ssl_trusted_certificate) it does.
my $sub = $ca->intermediate("$dir/sub", 'ml-guard issuing CA');
$client{chained} = [$sub->issue('chained.internal'), $sub->cert];
$sub->crl;   # CRL checks cover every CA of the chain: one CRL for each
$t->write_file('crl-all.pem', $t->read_file('ca/crl.pem') . $t->read_file('sub/crl.pem'));
$t->write_file('mtls-roles.txt', "chained.internal predict\n");
my %chain = (crl => "$dir/crl-all.pem", extra => 'ssl_verify_depth 2;');
for my $mode (@modes) {
    for my $trusted (0, 1) {
        my $what = $trusted ? 'intermediate trusted' : 'intermediate only sent by the client';
        $t->reload_nginx(config($mode, %chain,
            extra => $chain{extra} . ($trusted ? ' ssl_trusted_certificate ' . $sub->cert . ';' : '')));
        for my $v (@versions) {
            my $r = s_client('chained', $v);
            is_deeply $r->{status}, [200, 200], "$mode, TLS $v, $what: full handshake allowed"
                or diag $r->{out};
            $r = s_client('chained', $v, resume => 1);
            is_deeply $r->{reused}, [1, 1], "$mode, TLS $v, $what: the session was resumed";
            is_deeply $r->{status}, $trusted ? [200, 200] : [401, 401],
                "$mode, TLS $v, $what: resumed session " . ($trusted ? 'allowed' : 'refused');
        }
    }
}

like $t->read_file('logs/error.log'), qr/client certificate of a resumed TLS session does not verify now \(20:unable to get local issuer certificate\)/,
    'a resumed session without the intermediate: the reason is logged';
like $t->read_file('logs/error.log'), qr/client certificate of a resumed TLS session does not verify now \(23:certificate revoked\)/,
    'the refusal is logged with the reason';

$t->stop;
done_testing;

package MLGuard::PKI;

# A throwaway certificate authority made with the openssl command, for TLS
# and mutual-TLS tests (EC P-256 keys: fast to make).
#
#   my $ca = MLGuard::PKI->new("$dir/ca", 'Test CA');
#   my ($cert, $key) = $ca->issue('billing.internal');
#   $ca->revoke($cert);  my $crl = $ca->crl;
#   my $sub = $ca->intermediate("$dir/sub", 'Issuing CA');   # signed by $ca

use strict;
use warnings;
use Carp qw(croak);
use File::Path qw(make_path);

sub run {
    my (@cmd) = @_;
    my $out = `@{[ join ' ', map { "'$_'" } @cmd ]} 2>&1`;
    croak "@cmd failed:\n$out" if $?;
    return $out;
}

sub new {
    my ($class, $dir, $name, %opt) = @_;
    make_path($dir);
    my $self = bless { dir => $dir, serial => 1 }, $class;
    open my $fh, '>', "$dir/index.txt" or die $!;
    close $fh;
    open $fh, '>', "$dir/crlnumber" or die $!;
    print $fh "01\n";
    close $fh;
    open $fh, '>', "$dir/ca.cnf" or die $!;
    print $fh <<"EOT";
[ ca ]
default_ca = ca_default
[ ca_default ]
database = $dir/index.txt
crlnumber = $dir/crlnumber
default_md = sha256
default_crl_days = 2
EOT
    close $fh;
    if (my $parent = $opt{parent}) {
        # an intermediate CA: its certificate is signed by the parent CA
        open $fh, '>', "$dir/ca.ext" or die $!;
        print $fh "basicConstraints = critical, CA:TRUE\nkeyUsage = critical, keyCertSign, cRLSign\n";
        close $fh;
        run('openssl', 'req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
            '-keyout', "$dir/ca.key", '-out', "$dir/ca.csr", '-subj', "/CN=$name");
        run('openssl', 'x509', '-req', '-in', "$dir/ca.csr", '-CA', $parent->cert, '-CAkey', $parent->key,
            '-set_serial', sprintf('0x%04X', 0x1000 + $parent->{serial}++), '-out', "$dir/ca.pem",
            '-days', '2', '-extfile', "$dir/ca.ext");
        return $self;
    }
    run('openssl', 'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1',
        '-nodes', '-keyout', "$dir/ca.key", '-out', "$dir/ca.pem", '-days', '2', '-subj', "/CN=$name");
    return $self;
}

# An intermediate CA signed by this one.
sub intermediate {
    my ($self, $dir, $name) = @_;
    return ref($self)->new($dir, $name, parent => $self);
}

sub cert { "$_[0]{dir}/ca.pem" }
sub key  { "$_[0]{dir}/ca.key" }

# Issues a certificate for CN; returns (cert path, key path).  Options:
# server => 1 (localhost names), days => N, file => NAME (file name base,
# for a CN that does not make one), utf8 => 1 (the CN is UTF-8 bytes).
sub issue {
    my ($self, $cn, %opt) = @_;
    my $d = $self->{dir};
    (my $file = $opt{file} // $cn) =~ s/[^\w.-]/_/g;
    my $serial = sprintf '%04X', $self->{serial}++;
    open my $fh, '>', "$d/$file.ext" or die $!;
    print $fh "subjectAltName = DNS:localhost, IP:127.0.0.1\n" if $opt{server};
    print $fh "basicConstraints = CA:FALSE\n";
    close $fh;
    run('openssl', 'req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
        '-keyout', "$d/$file.key", '-out', "$d/$file.csr", '-subj', "/CN=$cn", $opt{utf8} ? '-utf8' : ());
    run('openssl', 'x509', '-req', '-in', "$d/$file.csr", '-CA', "$d/ca.pem", '-CAkey', "$d/ca.key",
        '-set_serial', "0x$serial", '-out', "$d/$file.pem", '-days', $opt{days} // '2',
        '-extfile', "$d/$file.ext");
    return ("$d/$file.pem", "$d/$file.key");
}

sub revoke {
    my ($self, $cert) = @_;
    run('openssl', 'ca', '-config', "$self->{dir}/ca.cnf", '-revoke', $cert,
        '-keyfile', "$self->{dir}/ca.key", '-cert', "$self->{dir}/ca.pem");
}

sub crl {
    my ($self) = @_;
    my $out = "$self->{dir}/crl.pem";
    run('openssl', 'ca', '-config', "$self->{dir}/ca.cnf", '-gencrl', '-keyfile', "$self->{dir}/ca.key",
        '-cert', "$self->{dir}/ca.pem", '-out', $out);
    return $out;
}

1;

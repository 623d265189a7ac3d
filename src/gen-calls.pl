#!/usr/bin/perl
# gen-calls.pl - generates the typed calls and the procedure table from the
# project's XDR definitions, so that a new procedure is a change to the .x
# files only.  It can also generate the table-driven XDR round-trip test.
#
# usage: gen-calls.pl DEFS.x OUT.h OUT.c
#        gen-calls.pl --xdr-test DEFS.x OUT_TEST.c
#
# A procedure is a line `const LVRPC_[PROG_]PROC_<NAME> = <number>;`; the
# one-line comment right above it documents the call.  Tags in brackets at
# the end of that comment describe what travels besides the reply:
#   [readstream]   the call opens a stream of data from the daemon
#   [writestream]  the call opens a stream of data to the daemon
#   [duplexstream] data flows both ways on the stream
#   [fds-in]       the call may carry file descriptors (CALL_WITH_FDS)
#   [fds-out]      the reply carries file descriptors (REPLY_WITH_FDS)
# Argument and reply types are lvrpc_[prog_]<name>_args / _ret when the
# definitions have them.  A procedure with an lvrpc_[prog_]<name>_msg type
# is an event: the daemon sends it, it has no call of its own, and it is in
# the table with its message type.
use strict;
use warnings;

# program prefix in constant names => [program constant, version constant,
# C prefix, label for documentation]
my %programs = (
    ''       => ['LVRPC_PROGRAM_REMOTE', 'LVRPC_PROGRAM_REMOTE_VERSION', 'lvrpc_',       'remote'],
    'QEMU_'  => ['LVRPC_PROGRAM_QEMU',   'LVRPC_PROGRAM_QEMU_VERSION',   'lvrpc_qemu_',  'QEMU'],
    'LXC_'   => ['LVRPC_PROGRAM_LXC',    'LVRPC_PROGRAM_LXC_VERSION',    'lvrpc_lxc_',   'LXC'],
    'ADMIN_' => ['LVRPC_PROGRAM_ADMIN',  'LVRPC_PROGRAM_ADMIN_VERSION',  'lvrpc_admin_', 'admin'],
);
my @prog_order = ('', 'QEMU_', 'LXC_', 'ADMIN_');
my %prog_rank = map { $prog_order[$_] => $_ } 0 .. $#prog_order;

my %tag_flags = (
    'readstream'   => ['LVRPC_PROCF_STREAM_RECV'],
    'writestream'  => ['LVRPC_PROCF_STREAM_SEND'],
    'duplexstream' => ['LVRPC_PROCF_STREAM_RECV', 'LVRPC_PROCF_STREAM_SEND'],
    'fds-in'       => ['LVRPC_PROCF_FDS_IN'],
    'fds-out'      => ['LVRPC_PROCF_FDS_OUT'],
);

my $mode = 'calls';
if (@ARGV && $ARGV[0] eq '--xdr-test') {
    $mode = 'test';
    shift @ARGV;
}
my ($in, $out_h, $out_c) = @ARGV;
if ($mode eq 'test') {
    die "usage: $0 --xdr-test DEFS.x OUT_TEST.c\n" unless $out_h;
} else {
    die "usage: $0 DEFS.x OUT.h OUT.c\n" unless $out_c;
}

# ------------------------------------------------------------------ parsing

open(my $fh, '<', $in) or die "$in: $!\n";
my $text = do { local $/; <$fh> };
close($fh);

# Procedures and their doc comments, line by line.
my (@procs, $last_comment);
for my $line (split /\n/, $text) {
    if ($line =~ /^\s*const\s+LVRPC_((?:[A-Z]+_)?)PROC_(\w+)\s*=\s*(\d+)\s*;/) {
        my ($pfx, $name, $num) = ($1, $2, $3);
        die "$in: no program for prefix '$pfx'\n" unless $programs{$pfx};
        push @procs, { pfx => $pfx, name => $name, num => $num,
                       doc => $last_comment // '' };
    }
    if ($line =~ m{^\s*/\*\s*(.*?)\s*\*/\s*$}) {
        $last_comment = $1;
    } elsif ($line =~ /\S/) {
        $last_comment = undef;
    }
}

# Types: a small parser for the subset of XDR the definitions use.
(my $src = $text) =~ s{/\*.*?\*/}{ }gs;
$src =~ s/^%.*$//mg;
my (%types, @type_order, %consts);

sub parse_decl {
    my ($d) = @_;
    $d =~ s/^\s+|\s+$//g;
    $d =~ s/\s+/ /g;
    return { kind => 'void' } if $d eq 'void';
    my ($opt, $arr, $len) = (0, '', '');
    if ($d =~ s/\s*<\s*([\w]*)\s*>$//) {
        ($arr, $len) = ('var', $1);
    } elsif ($d =~ s/\s*\[\s*(\w+)\s*\]$//) {
        ($arr, $len) = ('fixed', $1);
    }
    $opt = 1 if $d =~ s/\s*\*\s*(\w+)$/ $1/;
    $d =~ /^(.*?)\s*(\w+)$/ or die "$in: cannot parse declaration '$d'\n";
    my ($type, $name) = ($1, $2);
    $type =~ s/^unsigned$/unsigned int/;
    die "$in: empty type in '$d'\n" if $type eq '';
    return { type => $type, name => $name, opt => $opt, arr => $arr, len => $len };
}

while ($src =~ /\G\s*(.*?;)/gcs) {
    my $stmt = $1;
    if ($stmt =~ /^const\s+(\w+)\s*=\s*([\w]+)\s*;$/s) {
        $consts{$1} = $2;
        next;
    }
    if ($stmt =~ /^typedef\s+(.*);$/s) {
        my $d = parse_decl($1);
        $types{$d->{name}} = { kind => 'typedef', decl => $d };
        push @type_order, $d->{name};
        next;
    }
    if ($stmt =~ /^(struct|union|enum)\s+(\w+)\s*(.*)$/s) {
        my ($kind, $name, $rest) = ($1, $2, $3);
        # gather the body up to its closing brace and the ';' after it
        my $body = $rest;
        my $depth = () = $body =~ /\{/g;
        $depth -= () = $body =~ /\}/g;
        while ($depth > 0 || $body !~ /\}\s*;\s*$/s) {
            $src =~ /\G(.*?;)/gcs or die "$in: unterminated $kind $name\n";
            $body .= $1;
            $depth = () = $body =~ /\{/g;
            $depth -= () = $body =~ /\}/g;
        }
        if ($kind eq 'enum') {
            $body =~ /\{(.*)\}/s;
            my @vals = map { /(\w+)\s*=\s*(\w+)/ ? [$1, $2] : () } split /,/, $1;
            $types{$name} = { kind => 'enum', values => \@vals };
        } elsif ($kind eq 'struct') {
            $body =~ /\{(.*)\}/s;
            my @fields = map { parse_decl($_) } grep { /\S/ } split /;/, $1;
            $types{$name} = { kind => 'struct', fields => \@fields };
        } else {
            $body =~ /^switch\s*\(\s*(.*?)\s*\)\s*\{(.*)\}/s
                or die "$in: cannot parse union $name\n";
            my ($disc, $arms_src) = (parse_decl($1), $2);
            my @arms;
            while ($arms_src =~ /case\s+(\w+)\s*:\s*([^;]*);/g) {
                push @arms, { value => $1, decl => parse_decl($2) };
            }
            die "$in: union $name has a default arm (not supported)\n"
                if $arms_src =~ /default\s*:/;
            $types{$name} = { kind => 'union', disc => $disc, arms => \@arms };
        }
        push @type_order, $name;
        next;
    }
    die "$in: cannot parse statement: $stmt\n";
}

# ------------------------------------------------------------------ procedures

my %seen;
for my $p (@procs) {
    my $key = "$p->{pfx}:$p->{num}";
    die "$in: procedure number $p->{num} used twice\n" if $seen{$key}++;
    my $base = $programs{$p->{pfx}}[2] . lc($p->{name});
    $p->{func} = $base;
    $p->{args} = $types{"${base}_args"} ? "${base}_args" : undef;
    $p->{ret} = $types{"${base}_ret"} ? "${base}_ret" : undef;
    $p->{msg} = $types{"${base}_msg"} ? "${base}_msg" : undef;
    $p->{event} = $p->{msg} ? 1 : 0;
    die "$in: event $p->{name} also has an args or ret type\n"
        if $p->{event} && ($p->{args} || $p->{ret});
    $p->{const} = "LVRPC_$p->{pfx}PROC_$p->{name}";
    my @flags;
    push @flags, 'LVRPC_PROCF_EVENT' if $p->{event};
    while ($p->{doc} =~ s/\s*\[([\w-]+)\]\s*$//) {
        my $tag = $1;
        die "$in: unknown tag [$tag] on $p->{name}\n" unless $tag_flags{$tag};
        unshift @flags, @{$tag_flags{$tag}};
        $p->{tags}{$tag} = 1;
    }
    my %u;
    $p->{flags} = @flags ? join(' | ', grep { !$u{$_}++ } @flags) : '0';
}
@procs = sort { $prog_rank{$a->{pfx}} <=> $prog_rank{$b->{pfx}} || $a->{num} <=> $b->{num} }
    @procs;

# ------------------------------------------------------------------ helpers

my %base_c = (
    'int' => 'int', 'unsigned int' => 'unsigned int', 'hyper' => 'int64_t',
    'unsigned hyper' => 'uint64_t', 'char' => 'char', 'unsigned char' => 'unsigned char',
    'short' => 'short', 'unsigned short' => 'unsigned short', 'double' => 'double',
    'float' => 'float', 'bool' => 'bool_t',
);

# How a declaration looks to a C programmer, for the documentation.
sub c_desc {
    my ($d) = @_;
    my $t = $d->{type};
    if ($d->{arr} eq 'var') {
        return 'string' if $t eq 'string';
        return "bytes ($d->{name}_len, $d->{name}_val)" if $t eq 'opaque' || $t eq 'char';
        return 'array of ' . ($base_c{$t} // $t) . " ($d->{name}_len, $d->{name}_val)";
    }
    if ($d->{arr} eq 'fixed') {
        return ($base_c{$t} // $t) . "\[$d->{len}\]";
    }
    my $s = $base_c{$t} // $t;
    if ($types{$t} && $types{$t}{kind} eq 'typedef') {
        my $td = $types{$t}{decl};
        $s = 'string' if $t eq 'lvrpc_str';
        $s = 'string or NULL' if $t eq 'lvrpc_optstr';
        $s = '16-byte UUID' if $t eq 'lvrpc_uuid';
        $s = "$td->{type} or NULL" if $td->{opt} && $t ne 'lvrpc_optstr';
    }
    $s .= ' or NULL' if $d->{opt};
    return $s;
}

sub field_list {
    my ($tname) = @_;
    my $t = $types{$tname};
    return '' unless $t && $t->{kind} eq 'struct';
    return join(', ', map { "$_->{name} (" . c_desc($_) . ')' } @{$t->{fields}});
}

# Word-wraps documentation into comment lines of at most 90 columns.
sub wrap {
    my ($first, $rest, $s) = @_;
    my @out;
    my $line = $first;
    for my $w (split / /, $s) {
        if (length($line) + length($w) + 1 > 90 && $line ne $first && $line ne $rest) {
            push @out, $line;
            $line = $rest;
        }
        $line .= ($line eq $first || $line eq $rest ? '' : ' ') . $w;
    }
    push @out, $line;
    return @out;
}

sub params {
    my ($p) = @_;
    my $s = 'lvrpc_client *c';
    $s .= ", const $p->{args} *args" if $p->{args};
    $s .= ", $p->{ret} **ret" if $p->{ret};
    $s .= ', const int *fds, unsigned nfds' if $p->{tags}{'fds-in'};
    $s .= ', int **rfds, unsigned *nrfds' if $p->{tags}{'fds-out'};
    return $s;
}

sub label {
    my ($p) = @_;
    return ($p->{pfx} ? $p->{pfx} : '') . $p->{name};
}

# ------------------------------------------------------------------ test mode

if ($mode eq 'test') {
    gen_test($out_h);
    exit 0;
}

# ------------------------------------------------------------------ the header

my %count;
$count{$_->{pfx}}++ for @procs;

open(my $h, '>', "$out_h.tmp") or die "$out_h: $!\n";
print $h <<'HDR';
/* lvrpc_calls.h - typed calls, one per procedure of the definitions.
 * Generated by src/gen-calls.pl from the project's XDR definitions
 * (the .x files in src/protocol/); do not edit.
 *
 * Conventions, the same for every call below:
 *   - returns LVRPC_OK or an lvrpc_err code; details of a failure are in
 *     lvrpc_last_error() (LVRPC_EREMOTE: libvirt's error code and message);
 *   - `args` is read during the call and never kept; the caller owns it;
 *   - where a call has a reply, *ret receives on success a new reply that
 *     belongs to the caller, who frees it, nested strings and arrays
 *     included, with one lvrpc_reply_free(); on failure *ret is NULL.
 *     ret may be NULL when the reply is not wanted;
 *   - any thread may call, on a handle shared with other threads;
 *   - "or NULL" marks an optional value (a pointer the caller may leave
 *     NULL); lists are (NAME_len, NAME_val) pairs.
 * Calls of the QEMU, LXC and admin programs are prefixed lvrpc_qemu_,
 * lvrpc_lxc_ and lvrpc_admin_.  Events are listed at the end: the daemon
 * sends them, so they have no call.
 *
 * Streams: calls marked "opens a stream" only send the opening call and
 * return its reply (lvrpc_stream.h has the calls that open a stream
 * handle).  File descriptors (UNIX sockets only; see lvrpc_call_fds()):
 * calls that may pass some take `fds, nfds` (the caller's; nfds may be 0),
 * calls whose reply brings some take `rfds, nrfds` (rfds NULL: they are
 * closed; else the caller closes each and frees *rfds).
 */
#ifndef LVRPC_CALLS_H
#define LVRPC_CALLS_H

#ifdef __cplusplus
extern "C" {
#endif

HDR
printf $h "/* Procedures per program: remote %d, QEMU %d, LXC %d, admin %d. */\n",
    map { $count{$_} // 0 } @prog_order;
printf $h "#define LVRPC_PROC_COUNT_REMOTE %d\n#define LVRPC_PROC_COUNT_QEMU %d\n"
    . "#define LVRPC_PROC_COUNT_LXC %d\n#define LVRPC_PROC_COUNT_ADMIN %d\n\n",
    map { $count{$_} // 0 } @prog_order;

my $cur_pfx = '-';
for my $p (@procs) {
    next if $p->{event};
    if ($p->{pfx} ne $cur_pfx) {
        $cur_pfx = $p->{pfx};
        my $lbl = $programs{$cur_pfx}[3];
        print $h "/* ==================================================== $lbl program */\n\n";
    }
    my $what = "$p->{name} ($programs{$p->{pfx}}[3] procedure $p->{num})"
        . ($p->{doc} ? ": $p->{doc}" : '.');
    my @doc = wrap('/* ', ' * ', $what);
    if ($p->{args}) {
        push @doc, wrap(' * ', ' *   ', "Arguments: *args, $p->{args}: " . field_list($p->{args}) . '.');
    } else {
        push @doc, ' * No arguments.';
    }
    if ($p->{ret}) {
        push @doc, wrap(' * ', ' *   ', "Reply: *ret, a new $p->{ret}: " . field_list($p->{ret})
                        . '; the caller frees it with lvrpc_reply_free().');
    } else {
        push @doc, ' * No reply data.';
    }
    my @extra;
    push @extra, 'opens a stream of data from the daemon' if $p->{tags}{readstream};
    push @extra, 'opens a stream of data to the daemon' if $p->{tags}{writestream};
    push @extra, 'opens a stream that carries data both ways' if $p->{tags}{duplexstream};
    my @fds;
    push @fds, 'fds[0..nfds) are passed with the call' if $p->{tags}{'fds-in'};
    push @fds, 'the reply\'s descriptors go to *rfds and *nrfds' if $p->{tags}{'fds-out'};
    push @extra, 'FDs: ' . join(', and ', @fds) if @fds;
    push @doc, wrap(' * ', ' *   ', ucfirst(join('; ', @extra)) . '.') if @extra;
    $doc[-1] .= ' */';
    print $h join("\n", @doc), "\n";
    print $h "LVRPC_API int $p->{func}(" . params($p) . ");\n\n";
}

print $h "/* ==================================================== events\n";
print $h " * Sent by the daemon as MESSAGE packets (serial 0); in the procedure table\n";
print $h " * with LVRPC_PROCF_EVENT and their message type (xdr_msg).\n *\n";
for my $p (@procs) {
    next unless $p->{event};
    my $what = label($p) . " ($programs{$p->{pfx}}[3] procedure $p->{num}, $p->{msg}): $p->{doc}";
    print $h join("\n", wrap(' * ', ' *     ', $what)), "\n";
}
print $h " */\n\n";
print $h "#ifdef __cplusplus\n}\n#endif\n\n#endif /* LVRPC_CALLS_H */\n";
close($h) or die;

# ------------------------------------------------------------------ the calls

open(my $c, '>', "$out_c.tmp") or die "$out_c: $!\n";
print $c <<'SRC';
/* lvrpc_calls.c - typed calls and the procedure table.
 * Generated by src/gen-calls.pl; do not edit. */
#include "config.h"

#include <string.h>
#include <strings.h>

#include "lvrpc.h"

SRC
for my $p (@procs) {
    next if $p->{event};
    my ($prog, $vers) = @{$programs{$p->{pfx}}};
    my $xa = $p->{args} ? "(xdrproc_t)xdr_$p->{args}, args" : 'NULL, NULL';
    print $c "int $p->{func}(" . params($p) . ")\n{\n";
    if ($p->{tags}{'fds-in'} || $p->{tags}{'fds-out'}) {
        my $fi = $p->{tags}{'fds-in'} ? 'fds, nfds' : 'NULL, 0';
        my $fo = $p->{tags}{'fds-out'} ? 'rfds, nrfds' : 'NULL, NULL';
        my $xr = $p->{ret} ? "(xdrproc_t)xdr_$p->{ret}, sizeof($p->{ret}), &r" : 'NULL, 0, NULL';
        print $c "    void *r = NULL;\n" if $p->{ret};
        print $c "    int rc = lvrpc_call_fds(c, $prog, $vers, $p->{const}, $xa, $fi,\n";
        print $c "                            $xr, $fo);\n";
        print $c "    if (ret)\n        *ret = r;\n    else\n        lvrpc_reply_free(r);\n"
            if $p->{ret};
        print $c "    return rc;\n}\n\n";
    } elsif ($p->{ret}) {
        print $c "    void *r = NULL;\n";
        print $c "    int rc = lvrpc_call(c, $prog, $vers, $p->{const}, $xa,\n";
        print $c "                        (xdrproc_t)xdr_$p->{ret}, sizeof($p->{ret}), &r);\n";
        print $c "    if (ret)\n        *ret = r;\n    else\n        lvrpc_reply_free(r);\n";
        print $c "    return rc;\n}\n\n";
    } else {
        print $c "    return lvrpc_call(c, $prog, $vers, $p->{const}, $xa, NULL, 0, NULL);\n}\n\n";
    }
}
print $c "static const lvrpc_proc_info proc_table[] = {\n";
for my $p (@procs) {
    my ($prog) = @{$programs{$p->{pfx}}};
    my $xa = $p->{args} ? "(xdrproc_t)xdr_$p->{args}, sizeof($p->{args})" : 'NULL, 0';
    my $xr = $p->{ret} ? "(xdrproc_t)xdr_$p->{ret}, sizeof($p->{ret})" : 'NULL, 0';
    my $xm = $p->{msg} ? "(xdrproc_t)xdr_$p->{msg}, sizeof($p->{msg})" : 'NULL, 0';
    my $lbl = label($p);
    print $c "    {$prog, $p->{const}, \"$lbl\", $xa, $xr,\n     $p->{flags}, $xm},\n";
}
print $c "};\n\n";
print $c <<'SRC';
#define PROC_COUNT (sizeof(proc_table) / sizeof(proc_table[0]))

const lvrpc_proc_info *lvrpc_proc_table(size_t *count)
{
    if (count)
        *count = PROC_COUNT;
    return proc_table;
}

const lvrpc_proc_info *lvrpc_proc_by_number(unsigned prog, int proc)
{
    for (size_t i = 0; i < PROC_COUNT; i++)
        if (proc_table[i].prog == prog && proc_table[i].proc == proc)
            return &proc_table[i];
    return NULL;
}

/* Accepts "DOMAIN_LOOKUP_BY_NAME", "QEMU_DOMAIN_MONITOR_COMMAND" and the
 * constant names "LVRPC_PROC_..." / "LVRPC_QEMU_PROC_...", in any case. */
const lvrpc_proc_info *lvrpc_proc_by_name(const char *name)
{
    static const char *const prefixes[] = {"", "QEMU_", "LXC_", "ADMIN_"};
    char buf[128];

    if (!name)
        return NULL;
    if (strncasecmp(name, "LVRPC_", 6) == 0) {
        for (size_t k = 0; k < sizeof(prefixes) / sizeof(prefixes[0]); k++) {
            size_t pl = strlen(prefixes[k]);
            if (strncasecmp(name + 6, prefixes[k], pl) == 0 &&
                strncasecmp(name + 6 + pl, "PROC_", 5) == 0) {
                if (strlen(name + 11 + pl) + pl >= sizeof(buf))
                    return NULL;
                memcpy(buf, prefixes[k], pl);
                strcpy(buf + pl, name + 11 + pl);
                name = buf;
                break;
            }
        }
    }
    for (size_t i = 0; i < PROC_COUNT; i++)
        if (strcasecmp(proc_table[i].name, name) == 0)
            return &proc_table[i];
    return NULL;
}
SRC
close($c) or die;
rename("$out_h.tmp", $out_h) or die;
rename("$out_c.tmp", $out_c) or die;
exit 0;

# ------------------------------------------------------------------ the round-trip test

# C code that fills the declaration `$d` stored at lvalue `$lv`.
sub fill_code {
    my ($d, $lv, $ind) = @_;
    my $t = $d->{type};
    my $name = $d->{name};
    my $o = '';
    if ($d->{arr} eq 'var') {
        if ($t eq 'string') {
            return "${ind}$lv = lvrpct_x_string(f);\n";
        }
        if ($t eq 'opaque') {
            return "${ind}lvrpct_x_bytes(f, &$lv.${name}_len, &$lv.${name}_val);\n";
        }
        $o .= "${ind}$lv.${name}_len = lvrpct_x_count(f);\n";
        $o .= "${ind}$lv.${name}_val = lvrpct_x_alloc($lv.${name}_len, sizeof(*$lv.${name}_val));\n";
        $o .= "${ind}for (u_int i_ = 0; i_ < $lv.${name}_len; i_++) {\n";
        $o .= elem_code($t, "$lv.${name}_val[i_]", "$ind    ");
        $o .= "${ind}}\n";
        return $o;
    }
    if ($d->{arr} eq 'fixed') {
        my $n = $d->{len};
        if ($t eq 'opaque') {
            return "${ind}for (size_t i_ = 0; i_ < (size_t)($n); i_++)\n"
                 . "${ind}    $lv\[i_\] = (char)lvrpct_x_next(f);\n";
        }
        $o .= "${ind}for (size_t i_ = 0; i_ < (size_t)($n); i_++) {\n";
        $o .= elem_code($t, "$lv\[i_\]", "$ind    ");
        $o .= "${ind}}\n";
        return $o;
    }
    if ($d->{opt}) {
        $o .= "${ind}if (lvrpct_x_present(f)) {\n";
        $o .= "${ind}    $lv = lvrpct_x_alloc(1, sizeof(*$lv));\n";
        $o .= elem_code($t, "(*$lv)", "$ind    ");
        $o .= "${ind}} else {\n${ind}    $lv = NULL;\n${ind}}\n";
        return $o;
    }
    return elem_code($t, $lv, $ind);
}

# C code that fills one value of type $t at lvalue $lv.
sub elem_code {
    my ($t, $lv, $ind) = @_;
    if ($base_c{$t}) {
        return "${ind}$lv = lvrpct_x_double(f);\n" if $t eq 'double' || $t eq 'float';
        return "${ind}$lv = ($base_c{$t})lvrpct_x_next(f);\n";
    }
    return "${ind}$lv = lvrpct_x_string(f);\n" if $t eq 'string';
    die "$in: unknown type $t\n" unless $types{$t};
    return "${ind}fill_$t(&$lv, f);\n";
}

sub gen_test {
    my ($out) = @_;
    my @named = grep { $types{$_}{kind} ne 'enum' || 1 } @type_order;
    open(my $t, '>', "$out.tmp") or die "$out: $!\n";
    print $t <<'SRC';
/* test_xdr_all.c - an XDR round trip for every type of the definitions.
 * Generated by src/gen-calls.pl --xdr-test; do not edit.
 *
 * Each type gets fill_<type>(), which fills a value from a seeded counter:
 * every field set, lists of three elements, optional parts present, and the
 * typed-parameter union cycling through all of its arms.  The test encodes
 * such a value, decodes the bytes into a fresh value (which must consume
 * exactly those bytes), encodes that again and requires the same bytes;
 * every strictly shorter prefix of the encoding must fail to decode.  This
 * runs with three seeds and once with the "minimal" value (lists empty,
 * optional parts absent, strings empty).  Decoded values are freed with
 * xdr_free() (valgrind checks that nothing leaks).
 *
 * With LVRPCT_XDR_TABLE_ONLY defined, only the fill functions and the table
 * lvrpct_xdr_types[] are compiled (no CUnit, no main).
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>

#include "lvrpc.h"

typedef struct lvrpct_xfill {
    unsigned long n;    /* counter behind every value */
    int minimal;        /* lists empty, optional parts absent */
    unsigned arm;       /* next union arm */
} lvrpct_xfill;

static void *lvrpct_x_alloc(size_t n, size_t size)
{
    void *p;
    if (n == 0)
        return NULL;
    p = calloc(n, size);
    if (!p) {
        perror("calloc");
        abort();
    }
    return p;
}

static unsigned long lvrpct_x_next(lvrpct_xfill *f)
{
    return ++f->n % 120 + 1;
}

static double lvrpct_x_double(lvrpct_xfill *f)
{
    return (double)lvrpct_x_next(f) + 0.25;
}

static u_int lvrpct_x_count(lvrpct_xfill *f)
{
    return f->minimal ? 0 : 3;
}

static int lvrpct_x_present(lvrpct_xfill *f)
{
    return !f->minimal;
}

static char *lvrpct_x_string(lvrpct_xfill *f)
{
    char *s = lvrpct_x_alloc(32, 1);
    if (!f->minimal)
        snprintf(s, 32, "s%lu%.*s", lvrpct_x_next(f), (int)(f->n % 4), "xyz");
    return s;
}

static void lvrpct_x_bytes(lvrpct_xfill *f, u_int *len, char **val)
{
    *len = f->minimal ? 0 : (u_int)(lvrpct_x_next(f) % 7 + 1);
    *val = lvrpct_x_alloc(*len, 1);
    for (u_int i = 0; i < *len; i++)
        (*val)[i] = (char)(0xa0 + lvrpct_x_next(f));
}

SRC
    # prototypes first: the types refer to each other in file order, but a
    # prototype for every one keeps the order irrelevant
    for my $n (@named) {
        print $t "static void fill_$n($n *v, lvrpct_xfill *f);\n";
    }
    print $t "\n";
    for my $n (@named) {
        my $ty = $types{$n};
        print $t "static void fill_$n($n *v, lvrpct_xfill *f)\n{\n";
        if ($ty->{kind} eq 'struct') {
            print $t "    (void)f;\n" unless @{$ty->{fields}};
            for my $fd (@{$ty->{fields}}) {
                print $t fill_code($fd, "v->$fd->{name}", '    ');
            }
        } elsif ($ty->{kind} eq 'typedef') {
            my $d = { %{$ty->{decl}} };
            # the typedef's own name is what rpcgen calls the length/value pair
            print $t fill_code($d, "(*v)", '    ');
        } elsif ($ty->{kind} eq 'enum') {
            my $first = $ty->{values}[-1][0];
            print $t "    (void)f;\n    *v = $first;\n";
        } elsif ($ty->{kind} eq 'union') {
            my @arms = @{$ty->{arms}};
            my $dn = $ty->{disc}{name};
            printf $t "    switch (f->arm++ %% %d) {\n", scalar(@arms);
            for my $i (0 .. $#arms) {
                my $a = $arms[$i];
                print $t "    case $i:\n        v->$dn = $a->{value};\n";
                if ($a->{decl}{kind} && $a->{decl}{kind} eq 'void') {
                    print $t "        break;\n";
                    next;
                }
                print $t fill_code($a->{decl}, "v->${n}_u.$a->{decl}{name}", '        ');
                print $t "        break;\n";
            }
            print $t "    }\n";
        }
        print $t "}\n\n";
    }
    # the table
    print $t "typedef struct lvrpct_xdr_type {\n";
    print $t "    const char *name;\n    xdrproc_t xdr;\n    size_t size;\n";
    print $t "    void (*fill)(void *, lvrpct_xfill *);\n";
    print $t "    int role;   /* 0 shared type, 1 args, 2 ret, 3 msg */\n";
    print $t "} lvrpct_xdr_type;\n\n";
    print $t "static const lvrpct_xdr_type lvrpct_xdr_types[] = {\n";
    my @roles;
    for my $n (@named) {
        my $role = $n =~ /_args$/ ? 1 : $n =~ /_ret$/ ? 2 : $n =~ /_msg$/ ? 3 : 0;
        push @roles, $role;
        print $t "    {\"$n\", (xdrproc_t)xdr_$n, sizeof($n),\n"
            . "     (void (*)(void *, lvrpct_xfill *))fill_$n, $role},\n";
    }
    print $t "};\n";
    print $t "#define LVRPCT_XDR_NTYPES (sizeof(lvrpct_xdr_types) / sizeof(lvrpct_xdr_types[0]))\n\n";
    print $t "#ifndef LVRPCT_XDR_TABLE_ONLY\n";
    print $t <<'SRC';
#include <CUnit/CUnit.h>

#include "harness.h"

#define LVRPCT_XBUF (1u << 20)

/* Encodes v with t->xdr into buf; returns the length or -1. */
static long lvrpct_x_encode(const lvrpct_xdr_type *t, void *v, char *buf, size_t cap)
{
    XDR x;
    long len;
    xdrmem_create(&x, buf, (u_int)cap, XDR_ENCODE);
    len = t->xdr(&x, v) ? (long)xdr_getpos(&x) : -1;
    xdr_destroy(&x);
    return len;
}

/* One round trip of a value filled with the given seed; 0 when it holds. */
static int lvrpct_x_roundtrip(const lvrpct_xdr_type *t, unsigned long seed, int minimal,
                              char *a, char *b, char *msg, size_t msgsz)
{
    lvrpct_xfill f = {seed * 7, minimal, (unsigned)seed};
    void *v1 = lvrpct_x_alloc(1, t->size), *v2 = lvrpct_x_alloc(1, t->size);
    long la, lb = -1;
    int rc = -1;
    XDR x;

    t->fill(v1, &f);
    la = lvrpct_x_encode(t, v1, a, LVRPCT_XBUF);
    if (la < 0) {
        snprintf(msg, msgsz, "encoding the filled value failed");
        goto out;
    }
    xdrmem_create(&x, a, (u_int)la, XDR_DECODE);
    if (!t->xdr(&x, v2) || (long)xdr_getpos(&x) != la) {
        snprintf(msg, msgsz, "decoding %ld bytes failed or left bytes over", la);
        xdr_destroy(&x);
        goto out;
    }
    xdr_destroy(&x);
    lb = lvrpct_x_encode(t, v2, b, LVRPCT_XBUF);
    if (lb != la || memcmp(a, b, (size_t)la) != 0) {
        snprintf(msg, msgsz, "re-encoding gave %ld bytes, not the same %ld bytes", lb, la);
        goto out;
    }
    /* every shorter prefix must fail (XDR is self-delimiting); a sample of
     * them for long encodings */
    for (long cut = la - 4; cut >= 0; cut -= (la > 256 ? 36 : 4)) {
        void *v3 = lvrpct_x_alloc(1, t->size);
        int ok;
        xdrmem_create(&x, a, (u_int)cut, XDR_DECODE);
        ok = t->xdr(&x, v3);
        xdr_destroy(&x);
        xdr_free(t->xdr, v3);
        free(v3);
        if (ok) {
            snprintf(msg, msgsz, "a %ld-byte prefix of the %ld-byte encoding decoded", cut, la);
            goto out;
        }
    }
    rc = 0;
out:
    xdr_free(t->xdr, v1);
    xdr_free(t->xdr, v2);
    free(v1);
    free(v2);
    return rc;
}

static char *lvrpct_xa, *lvrpct_xb;

static void lvrpct_x_check(size_t i)
{
    const lvrpct_xdr_type *t = &lvrpct_xdr_types[i];
    char msg[200];
    for (unsigned long seed = 0; seed < 4; seed++) {
        int minimal = seed == 3;
        msg[0] = 0;
        int rc = lvrpct_x_roundtrip(t, seed, minimal, lvrpct_xa, lvrpct_xb, msg, sizeof(msg));
        lvrpct_assert(rc == 0, __FILE__, __LINE__, "%s (%s): %s", t->name,
                      minimal ? "minimal" : "full", msg);
        if (rc)
            break;
    }
}

SRC
    for my $i (0 .. $#named) {
        print $t "static void t_$named[$i](void) { lvrpct_x_check($i); }\n";
    }
    my %suite_name = (0 => 'shared types', 1 => 'argument types', 2 => 'reply types',
                      3 => 'event message types');
    for my $role (0 .. 3) {
        print $t "\nstatic const lvrpct_test lvrpct_xdr_tests_$role\[\] = {\n";
        for my $i (0 .. $#named) {
            next unless $roles[$i] == $role;
            print $t "    {\"$named[$i]\", t_$named[$i]},\n";
        }
        print $t "    {NULL, NULL},\n};\n";
    }
    print $t <<'SRC';

/* The table covers every type the procedure table names. */
static void t_procedures_covered(void)
{
    size_t n = 0;
    const lvrpc_proc_info *p = lvrpc_proc_table(&n);
    for (size_t i = 0; i < n; i++) {
        xdrproc_t want[3] = {p[i].xdr_args, p[i].xdr_ret, p[i].xdr_msg};
        for (int k = 0; k < 3; k++) {
            int found = !want[k];
            for (size_t j = 0; j < LVRPCT_XDR_NTYPES && !found; j++)
                found = lvrpct_xdr_types[j].xdr == want[k];
            lvrpct_assert(found, __FILE__, __LINE__, "%s: type %d is in the round-trip table",
                          p[i].name, k);
        }
    }
}

static const lvrpct_test lvrpct_xdr_tests_cover[] = {
    {"every procedure's types are in the table", t_procedures_covered},
    {NULL, NULL},
};

static int lvrpct_x_init(void)
{
    lvrpct_xa = malloc(LVRPCT_XBUF);
    lvrpct_xb = malloc(LVRPCT_XBUF);
    return lvrpct_xa && lvrpct_xb ? 0 : -1;
}

static int lvrpct_x_cleanup(void)
{
    free(lvrpct_xa);
    free(lvrpct_xb);
    lvrpct_xa = lvrpct_xb = NULL;
    return 0;
}

static void add_suites(void)
{
    lvrpct_add_suite("xdr round trip: shared types", lvrpct_x_init, lvrpct_x_cleanup,
                     lvrpct_xdr_tests_0);
    lvrpct_add_suite("xdr round trip: argument types", lvrpct_x_init, lvrpct_x_cleanup,
                     lvrpct_xdr_tests_1);
    lvrpct_add_suite("xdr round trip: reply types", lvrpct_x_init, lvrpct_x_cleanup,
                     lvrpct_xdr_tests_2);
    lvrpct_add_suite("xdr round trip: event message types", lvrpct_x_init, lvrpct_x_cleanup,
                     lvrpct_xdr_tests_3);
    lvrpct_add_suite("xdr round trip: coverage", NULL, NULL, lvrpct_xdr_tests_cover);
}

int main(int argc, char **argv)
{
    return lvrpct_main(argc, argv, add_suites);
}
#endif /* LVRPCT_XDR_TABLE_ONLY */
SRC
    close($t) or die;
    rename("$out.tmp", $out) or die;
}

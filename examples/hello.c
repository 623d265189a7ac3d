/* hello.c - open a handle, make typed calls from any thread, read errors. */
#include <lvrpc.h>
#include <stdio.h>

int main(int argc, char **argv)
{
    lvrpc_options opts = {0};           /* {0} = documented defaults */
    lvrpc_client *c;
    lvrpc_connect_list_all_domains_args la = {1, 0}; /* need_results, flags */
    lvrpc_connect_list_all_domains_ret *all = NULL;
    lvrpc_domain_lookup_by_name_args lk = {"no-such-domain"};
    lvrpc_domain_lookup_by_name_ret *dom = NULL;
    lvrpc_error err;

    opts.mode = LVRPC_MODE_SHARED;      /* or LVRPC_MODE_DIRECT (default) */
    opts.call_timeout_ms = 5000;
    if (lvrpc_open(argc > 1 ? argv[1] : NULL, &opts, &c) != LVRPC_OK) {
        fprintf(stderr, "open: %s\n", lvrpc_last_message());
        return 1;
    }
    if (lvrpc_connect_list_all_domains(c, &la, &all) == LVRPC_OK) {
        for (unsigned i = 0; i < all->domains.domains_len; i++)
            printf("%d %s\n", all->domains.domains_val[i].id,
                   all->domains.domains_val[i].name);
        lvrpc_reply_free(all);          /* frees the array and the names too */
    }
    if (lvrpc_domain_lookup_by_name(c, &lk, &dom) == LVRPC_EREMOTE) {
        lvrpc_last_error(&err);         /* libvirt's code and message */
        printf("error %d: %s\n", err.remote_code, err.message);
    }
    lvrpc_close(c);
    return 0;
}

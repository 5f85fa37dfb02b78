/* Singly linked list of integers. */
#include <stdio.h>
#include <stdlib.h>

// A node owns its successor.
struct node {
    int value;
    struct node *next;
};

static struct node *push(struct node *head, int value)
{
    struct node *n = malloc(sizeof *n);
    if (!n) {
        perror("malloc"); /* out of memory */
        exit(1);
    }
    n->value = value;
    n->next = head;
    return n;
}

int main(void)
{
    struct node *head = NULL;
    for (int i = 0; i < 10; i++)
        head = push(head, i * i);
    for (struct node *n = head; n; n = n->next)
        printf("%d\n", n->value);
    return 0;
}

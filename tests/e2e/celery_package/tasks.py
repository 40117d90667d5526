from taskqueue import shared_task


@shared_task
def discovered():
    return "discovered"

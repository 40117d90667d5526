# Indexes for the admin at scale (a filter per column, ordered like the list; search by id prefix),
# and the dashboard's proxy model. The new unique index is made before the old one goes, so results
# can be stored throughout.

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('taskqueue', '0007_operations'),
    ]

    operations = [
        migrations.CreateModel(
            name='Dashboard',
            fields=[
            ],
            options={
                'verbose_name': 'dashboard',
                'verbose_name_plural': 'dashboard',
                'proxy': True,
                'indexes': [],
                'constraints': [],
            },
            bases=('taskqueue.taskresult',),
        ),
        migrations.AddConstraint(
            model_name='taskresult',
            constraint=models.UniqueConstraint(fields=('task_id',), name='tq_result_task_id_prefix', opclasses=['varchar_pattern_ops']),
        ),
        migrations.RemoveConstraint(
            model_name='taskresult',
            name='tq_result_task_id',
        ),
        migrations.RemoveIndex(
            model_name='taskresult',
            name='tq_result_task_name',
        ),
        migrations.AddIndex(
            model_name='taskresult',
            index=models.Index(fields=['task_name', 'date_created'], name='tq_result_name_created'),
        ),
        migrations.AddIndex(
            model_name='taskresult',
            index=models.Index(fields=['queue', 'date_created'], name='tq_result_queue_created'),
        ),
        migrations.AddIndex(
            model_name='taskresult',
            index=models.Index(fields=['worker', 'date_created'], name='tq_result_worker_created'),
        ),
        migrations.AddIndex(
            model_name='taskresult',
            index=models.Index(condition=models.Q(('root_id__isnull', False)), fields=['root_id'], name='tq_result_root'),
        ),
    ]

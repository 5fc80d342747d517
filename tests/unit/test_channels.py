import asyncio

import pytest

from kinefuse.channels import ChannelClosed, DropOldestChannel


def test_full_channel_drops_oldest_and_counts():
    dropped = []
    channel = DropOldestChannel(3, "t", on_drop=dropped.append)
    for i in range(5):
        channel.put(i)
    assert dropped == [0, 1] and channel.dropped == 2 and channel.put_count == 5
    assert asyncio.run(channel.get_many(10)) == [2, 3, 4]


def test_pinned_items_survive_overflow():
    channel = DropOldestChannel(2, "t", pinned=lambda item: item == "keep")
    for item in ["keep", 1, 2, 3]:
        channel.put(item)
    assert asyncio.run(channel.get_many(10)) == ["keep", 3]


def test_closed_channel_drains_then_raises():
    async def scenario():
        channel = DropOldestChannel(4, "t")
        channel.put("a")
        channel.close()
        with pytest.raises(ChannelClosed):
            channel.put("b")
        assert await channel.get() == "a"
        with pytest.raises(ChannelClosed):
            await channel.get()

    asyncio.run(scenario())


def test_consumer_wakes_when_an_item_arrives():
    async def scenario():
        channel = DropOldestChannel(4, "t")
        waiter = asyncio.create_task(channel.get())
        await asyncio.sleep(0.01)
        assert not waiter.done()
        channel.put(7)
        assert await asyncio.wait_for(waiter, 1) == 7

    asyncio.run(scenario())

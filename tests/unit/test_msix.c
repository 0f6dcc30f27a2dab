// SPDX-License-Identifier: MIT
/*
 * MSI-X (PCI 3.0 s6.8.2) and KVM GSI routing against a fake KVM: the capability, the table and PBA as
 * the guest reaches them through a BAR, masking and pending delivery, route updates, GSI allocation,
 * and the default routes every table sent to KVM must keep.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "devices/pci/msix.h"
#include "vmm/irq_routing.h"

#include "fake_vmm.h"

#define SLOT 2
#define NR_VECTORS 8
#define TABLE 0x1000u
#define PBA 0x2000u
#define BAR_SIZE 0x4000u
#define BAD_DATA 0xbadu /* the fake KVM is told to refuse routes with this data */

struct fixture {
	struct fake_vmm vm;
	struct pci_device pdev;
	struct msix *msix;
	int dev_accesses;
	uint64_t dev_offset;
	uint64_t bar;
};

static void dev_bar_access(struct pci_device *pdev, unsigned int bar, uint64_t offset, uint8_t *data, uint32_t len,
			   bool is_write)
{
	struct fixture *f = pdev->opaque;

	if (msix_bar_access(f->msix, bar, offset, data, len, is_write))
		return;
	f->dev_accesses++;
	f->dev_offset = offset;
	if (!is_write)
		memset(data, 0x77, len);
}

static void dev_config_write(struct pci_device *pdev, uint32_t offset, uint32_t len)
{
	struct fixture *f = pdev->opaque;

	msix_config_write(f->msix, offset, len);
}

static const struct pci_device_ops dev_ops = {
	.bar_access = dev_bar_access,
	.config_write = dev_config_write,
};

static uint64_t entry(struct fixture *f, unsigned int vec, unsigned int field)
{
	return f->bar + TABLE + vec * MSIX_ENTRY_SIZE + field;
}

static void set_control(struct fixture *f, uint16_t ctrl)
{
	fake_vmm_cfg_write(&f->vm, SLOT, msix_cap_offset(f->msix) + MSIX_CAP_CONTROL, ctrl, 2);
}

static void program(struct fixture *f, unsigned int vec, uint64_t addr, uint32_t data)
{
	fake_vmm_msix_program(&f->vm, f->bar + TABLE, vec, addr, data);
}

static void vector_mask(struct fixture *f, unsigned int vec, bool masked)
{
	fake_vmm_mmio_write(&f->vm, entry(f, vec, MSIX_ENTRY_CTRL), masked, 4);
}

/* The MSI route in the fake KVM's table carrying `data`, or NULL. */
static const struct kvm_irq_routing_entry *route_with_data(struct fixture *f, uint32_t data)
{
	for (unsigned int i = 0; i < f->vm.kvm.nr; i++)
		if (f->vm.kvm.table[i].type == KVM_IRQ_ROUTING_MSI && f->vm.kvm.table[i].u.msi.data == data)
			return &f->vm.kvm.table[i];
	return NULL;
}

/* Interrupts delivered through the irqfd on `gsi` since the last call (reads the eventfd). */
static uint64_t irqfd_count(struct fixture *f, uint32_t gsi)
{
	for (int i = 0; i < f->vm.kvm.nr_irqfds; i++) {
		uint64_t n = 0;

		if (!f->vm.kvm.irqfds[i].assigned || f->vm.kvm.irqfds[i].gsi != gsi)
			continue;
		if (read(f->vm.kvm.irqfds[i].fd, &n, sizeof(n)) != (ssize_t)sizeof(n))
			return 0; /* EAGAIN: nothing */
		return n;
	}
	fail_msg("no irqfd on GSI %u", gsi);
	return 0;
}

static int setup_with(void **state, unsigned int nr_gsis)
{
	struct fixture *f = test_calloc(1, sizeof(*f));
	const struct fake_vmm_config cfg = { .nr_msi_gsis = nr_gsis };
	const struct pci_device_info info = { .name = "msix-test", .vendor = 0x1af4, .device = 0x1042,
			.class_code = 0x018000 };

	assert_int_equal(fake_vmm_init(&f->vm, &cfg), 0);
	f->vm.kvm.refuse_msi_data = true;
	f->vm.kvm.bad_msi_data = BAD_DATA;
	pci_device_init(&f->pdev, &info, &dev_ops, f);
	assert_int_equal(pci_device_add_bar(&f->pdev, 0, BAR_SIZE, PCI_BAR_MEM32, false), 0);
	f->msix = msix_create(&f->pdev, f->vm.rt, NR_VECTORS, 0, TABLE, PBA);
	assert_non_null(f->msix);
	assert_int_equal(pci_register_device(f->vm.pci, &f->pdev, SLOT), SLOT);
	f->bar = fake_vmm_pci_enable(&f->vm, &f->pdev, SLOT);
	*state = f;
	return 0;
}

static int setup(void **state)
{
	return setup_with(state, 64);
}

static int setup_one_gsi(void **state)
{
	return setup_with(state, 1);
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	msix_destroy(f->msix);
	fake_vmm_stop(&f->vm);
	fake_vmm_destroy(&f->vm);
	test_free(f);
	return 0;
}

static void test_capability(void **state)
{
	struct fixture *f = *state;
	unsigned int cap = fake_vmm_cfg_read(&f->vm, SLOT, PCI_CAPABILITY_LIST, 1);

	assert_true(fake_vmm_cfg_read(&f->vm, SLOT, PCI_STATUS, 2) & PCI_STATUS_CAP_LIST);
	assert_int_equal(cap, msix_cap_offset(f->msix));
	assert_int_equal(fake_vmm_cfg_read(&f->vm, SLOT, cap, 1), PCI_CAP_ID_MSIX);
	assert_int_equal(fake_vmm_cfg_read(&f->vm, SLOT, cap + 1, 1), 0);
	assert_int_equal(fake_vmm_cfg_read(&f->vm, SLOT, cap + MSIX_CAP_CONTROL, 2), NR_VECTORS - 1);
	assert_int_equal(fake_vmm_cfg_read(&f->vm, SLOT, cap + MSIX_CAP_TABLE, 4), TABLE | 0);
	assert_int_equal(fake_vmm_cfg_read(&f->vm, SLOT, cap + MSIX_CAP_PBA, 4), PBA | 0);
	/* Only Enable and Function Mask are writable. */
	fake_vmm_cfg_write(&f->vm, SLOT, cap + MSIX_CAP_CONTROL, 0xffff, 2);
	assert_int_equal(fake_vmm_cfg_read(&f->vm, SLOT, cap + MSIX_CAP_CONTROL, 2), 0xc000 | (NR_VECTORS - 1));
	assert_true(msix_enabled(f->msix));
	fake_vmm_cfg_write(&f->vm, SLOT, cap, 0, 4);
	assert_int_equal(fake_vmm_cfg_read(&f->vm, SLOT, cap, 4), (NR_VECTORS - 1) << 16 | PCI_CAP_ID_MSIX);
	assert_false(msix_enabled(f->msix));
	fake_vmm_cfg_write(&f->vm, SLOT, cap + MSIX_CAP_TABLE, 0xffffffff, 4);
	fake_vmm_cfg_write(&f->vm, SLOT, cap + MSIX_CAP_PBA, 0, 4);
	assert_int_equal(fake_vmm_cfg_read(&f->vm, SLOT, cap + MSIX_CAP_TABLE, 4), TABLE);
	assert_int_equal(fake_vmm_cfg_read(&f->vm, SLOT, cap + MSIX_CAP_PBA, 4), PBA);
}

static void test_table_reset_and_rw(void **state)
{
	struct fixture *f = *state;

	for (unsigned int v = 0; v < NR_VECTORS; v++) {
		assert_int_equal(fake_vmm_mmio_read(&f->vm, entry(f, v, MSIX_ENTRY_ADDR_LO), 8), 0);
		assert_int_equal(fake_vmm_mmio_read(&f->vm, entry(f, v, MSIX_ENTRY_DATA), 4), 0);
		assert_int_equal(fake_vmm_mmio_read(&f->vm, entry(f, v, MSIX_ENTRY_CTRL), 4), MSIX_ENTRY_CTRL_MASKED);
	}
	assert_int_equal(fake_vmm_mmio_read(&f->vm, f->bar + PBA, 8), 0);

	program(f, 3, 0x00000001fee01003ull, 0x4031);
	/* bits 1:0 read 0 */
	assert_int_equal(fake_vmm_mmio_read(&f->vm, entry(f, 3, MSIX_ENTRY_ADDR_LO), 4), 0xfee01000);
	assert_int_equal(fake_vmm_mmio_read(&f->vm, entry(f, 3, MSIX_ENTRY_ADDR_HI), 4), 1);
	assert_int_equal(fake_vmm_mmio_read(&f->vm, entry(f, 3, MSIX_ENTRY_DATA), 4), 0x4031);
	/* 64-bit accesses: the address as one qword, data + control as another. */
	fake_vmm_mmio_write(&f->vm, entry(f, 4, MSIX_ENTRY_ADDR_LO), 0x00000002fee02000ull, 8);
	assert_int_equal(fake_vmm_mmio_read(&f->vm, entry(f, 4, MSIX_ENTRY_ADDR_LO), 8), 0x00000002fee02000ull);
	fake_vmm_mmio_write(&f->vm, entry(f, 4, MSIX_ENTRY_DATA), 0x0000000000004042ull, 8); /* unmasks too */
	assert_int_equal(fake_vmm_mmio_read(&f->vm, entry(f, 4, MSIX_ENTRY_DATA), 8), 0x4042);
	/* Byte and word reads of an entry. */
	assert_int_equal(fake_vmm_mmio_read(&f->vm, entry(f, 3, MSIX_ENTRY_ADDR_LO) + 3, 1), 0xfe);
	assert_int_equal(fake_vmm_mmio_read(&f->vm, entry(f, 3, MSIX_ENTRY_ADDR_LO) + 2, 2), 0xfee0);
	/* Vector Control reserved bits read 0. */
	fake_vmm_mmio_write(&f->vm, entry(f, 5, MSIX_ENTRY_CTRL), 0xfffffffe, 4);
	assert_int_equal(fake_vmm_mmio_read(&f->vm, entry(f, 5, MSIX_ENTRY_CTRL), 4), 0);
	fake_vmm_mmio_write(&f->vm, entry(f, 5, MSIX_ENTRY_CTRL), 0xffffffff, 4);
	assert_int_equal(fake_vmm_mmio_read(&f->vm, entry(f, 5, MSIX_ENTRY_CTRL), 4), 1);
	/* The rest of the BAR is the device's. */
	assert_int_equal(fake_vmm_mmio_read(&f->vm, f->bar + 0x10, 4), 0x77777777);
	assert_int_equal(f->dev_accesses, 1);
	assert_int_equal(f->dev_offset, 0x10);
}

static void test_hostile_table_accesses(void **state)
{
	struct fixture *f = *state;
	uint64_t end = f->bar + TABLE + NR_VECTORS * MSIX_ENTRY_SIZE;

	program(f, 0, 0xfee00000, 0x4021);
	/* Unaligned, odd-sized or misaligned-qword writes are dropped. */
	fake_vmm_mmio_write(&f->vm, entry(f, 0, MSIX_ENTRY_ADDR_LO) + 2, 0xffffffff, 4);
	fake_vmm_mmio_write(&f->vm, entry(f, 0, MSIX_ENTRY_ADDR_HI), 0xffffffffffffffffull, 8);
	fake_vmm_mmio_write(&f->vm, entry(f, 0, MSIX_ENTRY_DATA), 0xff, 1);
	fake_vmm_mmio_write(&f->vm, entry(f, 0, MSIX_ENTRY_DATA), 0xffff, 2);
	fake_vmm_mmio_write(&f->vm, entry(f, 0, MSIX_ENTRY_CTRL), 0, 2);
	assert_int_equal(fake_vmm_mmio_read(&f->vm, entry(f, 0, MSIX_ENTRY_ADDR_LO), 8), 0xfee00000);
	assert_int_equal(fake_vmm_mmio_read(&f->vm, entry(f, 0, MSIX_ENTRY_DATA), 8), 0x100004021ull);
	/* Unaligned reads: all-ones. */
	assert_int_equal(fake_vmm_mmio_read(&f->vm, entry(f, 0, 1), 4), 0xffffffff);
	assert_int_equal(fake_vmm_mmio_read(&f->vm, entry(f, 0, 4), 8), ~0ull);
	assert_int_equal(fake_vmm_mmio_read(&f->vm, entry(f, 0, 1), 3), 0xffffff);
	/* Straddling the table's end: ours, refused, not passed to the device. */
	assert_int_equal(fake_vmm_mmio_read(&f->vm, end - 4, 8), ~0ull);
	fake_vmm_mmio_write(&f->vm, end - 4, 0, 8);
	assert_int_equal(fake_vmm_mmio_read(&f->vm, entry(f, NR_VECTORS - 1, MSIX_ENTRY_CTRL), 4), 1);
	assert_int_equal(f->dev_accesses, 0);
	/* Just past the table: the device's. */
	assert_int_equal(fake_vmm_mmio_read(&f->vm, end, 4), 0x77777777);
	assert_int_equal(f->dev_accesses, 1);
	/* The PBA is read-only, and ends where its qwords end. */
	assert_true(msix_notify(f->msix, 0) == false);
	fake_vmm_mmio_write(&f->vm, f->bar + PBA, ~0ull, 8);
	assert_int_equal(fake_vmm_mmio_read(&f->vm, f->bar + PBA, 8), 0);
	assert_int_equal(fake_vmm_mmio_read(&f->vm, f->bar + PBA + 8, 4), 0x77777777);
	assert_int_equal(fake_vmm_mmio_read(&f->vm, f->bar + PBA + 4, 8), ~0ull);
	assert_int_equal(f->dev_accesses, 2);
	/* Out-of-range vectors. */
	set_control(f, MSIX_CONTROL_ENABLE);
	assert_false(msix_notify(f->msix, NR_VECTORS));
	assert_false(msix_notify(f->msix, ~0u));
	assert_false(msix_pending(f->msix, NR_VECTORS));
}

static void test_default_routes_kept(void **state)
{
	struct fixture *f = *state;
	unsigned int n = 0;

	program(f, 0, 0xfee00000, 0x4021);
	set_control(f, MSIX_CONTROL_ENABLE);
	assert_int_equal(f->vm.kvm.set_calls, 0); /* still masked: nothing sent yet */
	vector_mask(f, 0, false);
	assert_int_equal(f->vm.kvm.set_calls, 1);
	assert_int_equal(f->vm.kvm.nr, IRQ_ROUTING_NR_DEFAULT + 1);
	/* KVM_CREATE_IRQCHIP's table: GSI 0-15 to the IOAPIC and the PIC, 16-23 to the IOAPIC. */
	for (uint32_t gsi = 0; gsi < 24; gsi++) {
		const struct kvm_irq_routing_entry *e = &f->vm.kvm.table[n++];

		assert_int_equal(e->gsi, gsi);
		assert_int_equal(e->type, KVM_IRQ_ROUTING_IRQCHIP);
		assert_int_equal(e->u.irqchip.irqchip, KVM_IRQCHIP_IOAPIC);
		assert_int_equal(e->u.irqchip.pin, gsi);
		if (gsi < 16) {
			e = &f->vm.kvm.table[n++];
			assert_int_equal(e->gsi, gsi);
			assert_int_equal(e->type, KVM_IRQ_ROUTING_IRQCHIP);
			assert_int_equal(e->u.irqchip.irqchip,
					gsi < 8 ? KVM_IRQCHIP_PIC_MASTER : KVM_IRQCHIP_PIC_SLAVE);
			assert_int_equal(e->u.irqchip.pin, gsi % 8);
		}
	}
	assert_int_equal(n, IRQ_ROUTING_NR_DEFAULT);
	assert_int_equal(f->vm.kvm.table[n].type, KVM_IRQ_ROUTING_MSI);
	assert_true(f->vm.kvm.table[n].gsi >= IRQ_ROUTING_FIRST_MSI_GSI);
}

static void test_route_and_delivery(void **state)
{
	struct fixture *f = *state;
	const struct kvm_irq_routing_entry *r;

	program(f, 0, 0x00000000fee01000ull, 0x4021);
	program(f, 1, 0x00000012fee02000ull, 0x4022); /* a high address word reaches KVM too */
	vector_mask(f, 0, false);
	vector_mask(f, 1, false);
	assert_int_equal(f->vm.kvm.set_calls, 0); /* MSI-X not enabled yet */
	set_control(f, MSIX_CONTROL_ENABLE);
	r = route_with_data(f, 0x4021);
	assert_non_null(r);
	assert_int_equal(r->u.msi.address_lo, 0xfee01000);
	assert_int_equal(r->u.msi.address_hi, 0);
	assert_int_equal(r->gsi, IRQ_ROUTING_FIRST_MSI_GSI);
	r = route_with_data(f, 0x4022);
	assert_non_null(r);
	assert_int_equal(r->u.msi.address_lo, 0xfee02000);
	assert_int_equal(r->u.msi.address_hi, 0x12);
	assert_int_equal(r->gsi, IRQ_ROUTING_FIRST_MSI_GSI + 1);
	assert_int_equal(irq_routing_nr_msi_routes(f->vm.rt), 2);

	assert_true(msix_notify(f->msix, 0));
	assert_true(msix_notify(f->msix, 0));
	assert_true(msix_notify(f->msix, 1));
	assert_int_equal(irqfd_count(f, IRQ_ROUTING_FIRST_MSI_GSI), 2);
	assert_int_equal(irqfd_count(f, IRQ_ROUTING_FIRST_MSI_GSI + 1), 1);
	assert_int_equal(f->vm.kvm.msi_calls, 0);
	assert_false(msix_pending(f->msix, 0));
}

static void test_vector_mask_pending(void **state)
{
	struct fixture *f = *state;
	const struct kvm_irq_routing_entry *r;

	set_control(f, MSIX_CONTROL_ENABLE);
	program(f, 1, 0xfee00000, 0x4031);
	assert_true(msix_notify(f->msix, 1)); /* masked since reset */
	assert_true(msix_pending(f->msix, 1));
	assert_int_equal(fake_vmm_mmio_read(&f->vm, f->bar + PBA, 8), 1u << 1);
	assert_int_equal(fake_vmm_mmio_read(&f->vm, f->bar + PBA, 1), 1u << 1);
	assert_int_equal(f->vm.kvm.set_calls, 0);
	assert_int_equal(f->vm.kvm.msi_calls, 0);
	vector_mask(f, 1, false); /* unmask: route, then the pending message */
	r = route_with_data(f, 0x4031);
	assert_non_null(r);
	assert_int_equal(irqfd_count(f, r->gsi), 1);
	assert_false(msix_pending(f->msix, 1));
	assert_int_equal(fake_vmm_mmio_read(&f->vm, f->bar + PBA, 8), 0);
	/* Masked again: pending again, nothing delivered; several signals collapse into one. */
	vector_mask(f, 1, true);
	assert_true(msix_notify(f->msix, 1));
	assert_true(msix_notify(f->msix, 1));
	assert_int_equal(irqfd_count(f, r->gsi), 0);
	vector_mask(f, 1, false);
	assert_int_equal(irqfd_count(f, r->gsi), 1);
	/* Masking and unmasking an unchanged entry costs no routing update. */
	assert_int_equal(f->vm.kvm.set_calls, 1);
	for (int i = 0; i < 10; i++) {
		vector_mask(f, 1, true);
		vector_mask(f, 1, false);
	}
	assert_int_equal(f->vm.kvm.set_calls, 1);
}

static void test_function_mask(void **state)
{
	struct fixture *f = *state;
	const struct kvm_irq_routing_entry *r;

	program(f, 2, 0xfee00000, 0x4041);
	vector_mask(f, 2, false);
	set_control(f, MSIX_CONTROL_ENABLE | MSIX_CONTROL_FUNCTION_MASK);
	assert_true(msix_notify(f->msix, 2));
	assert_true(msix_pending(f->msix, 2));
	assert_int_equal(f->vm.kvm.set_calls, 0);
	set_control(f, MSIX_CONTROL_ENABLE);
	r = route_with_data(f, 0x4041);
	assert_non_null(r);
	assert_int_equal(irqfd_count(f, r->gsi), 1);
	assert_false(msix_pending(f->msix, 2));
	/* Function mask with the vector unmasked, through a dword write of the capability header. */
	fake_vmm_cfg_write(&f->vm, SLOT, msix_cap_offset(f->msix),
			(uint32_t)(MSIX_CONTROL_ENABLE | MSIX_CONTROL_FUNCTION_MASK) << 16, 4);
	assert_true(msix_notify(f->msix, 2));
	assert_int_equal(irqfd_count(f, r->gsi), 0);
	fake_vmm_cfg_write(&f->vm, SLOT, msix_cap_offset(f->msix) + 3, MSIX_CONTROL_ENABLE >> 8, 1);
	assert_int_equal(irqfd_count(f, r->gsi), 1);
}

static void test_enable_bit(void **state)
{
	struct fixture *f = *state;

	program(f, 0, 0xfee00000, 0x4051);
	vector_mask(f, 0, false);
	assert_false(msix_notify(f->msix, 0)); /* disabled: the device uses INTx */
	assert_false(msix_pending(f->msix, 0));
	set_control(f, MSIX_CONTROL_ENABLE);
	assert_true(msix_notify(f->msix, 0));
	assert_int_equal(irqfd_count(f, route_with_data(f, 0x4051)->gsi), 1);
	set_control(f, 0);
	assert_false(msix_notify(f->msix, 0));
	assert_false(msix_enabled(f->msix));
}

static void test_route_update_while_unmasked(void **state)
{
	struct fixture *f = *state;
	const struct kvm_irq_routing_entry *r;
	int calls;

	program(f, 0, 0xfee00000, 0x4061);
	vector_mask(f, 0, false);
	set_control(f, MSIX_CONTROL_ENABLE);
	calls = f->vm.kvm.set_calls;
	/* Older Linux rewrites a live entry when it moves an IRQ: each change reaches KVM. */
	fake_vmm_mmio_write(&f->vm, entry(f, 0, MSIX_ENTRY_DATA), 0x4062, 4);
	assert_int_equal(f->vm.kvm.set_calls, calls + 1);
	assert_null(route_with_data(f, 0x4061));
	fake_vmm_mmio_write(&f->vm, entry(f, 0, MSIX_ENTRY_ADDR_LO), 0xfee03000, 4);
	r = route_with_data(f, 0x4062);
	assert_non_null(r);
	assert_int_equal(r->u.msi.address_lo, 0xfee03000);
	calls = f->vm.kvm.set_calls;
	/* Rewriting the same values sends nothing. */
	fake_vmm_mmio_write(&f->vm, entry(f, 0, MSIX_ENTRY_DATA), 0x4062, 4);
	fake_vmm_mmio_write(&f->vm, entry(f, 0, MSIX_ENTRY_ADDR_LO), 0x00000000fee03000ull, 8);
	assert_int_equal(f->vm.kvm.set_calls, calls);
	/* A masked entry's changes wait for the unmask. */
	vector_mask(f, 0, true);
	program(f, 0, 0xfee04000, 0x4063);
	assert_int_equal(f->vm.kvm.set_calls, calls);
	vector_mask(f, 0, false);
	assert_int_equal(f->vm.kvm.set_calls, calls + 1);
	assert_non_null(route_with_data(f, 0x4063));
	assert_int_equal(irq_routing_nr_msi_routes(f->vm.rt), 1);
}

static void test_route_refused(void **state)
{
	struct fixture *f = *state;
	int calls;

	program(f, 0, 0xfee00000, 0x4071);
	vector_mask(f, 0, false);
	set_control(f, MSIX_CONTROL_ENABLE);
	calls = f->vm.kvm.set_calls;
	/* KVM refuses the new message: its old table stays, kiln falls back to KVM_SIGNAL_MSI. */
	fake_vmm_mmio_write(&f->vm, entry(f, 0, MSIX_ENTRY_DATA), BAD_DATA, 4);
	assert_int_equal(f->vm.kvm.set_calls, calls);
	assert_non_null(route_with_data(f, 0x4071));
	assert_true(msix_notify(f->msix, 0));
	assert_int_equal(f->vm.kvm.msi_calls, 1);
	assert_int_equal(f->vm.kvm.last_msi.data, BAD_DATA);
	assert_int_equal(f->vm.kvm.last_msi.address_lo, 0xfee00000);
	/* A good message again: back on the irqfd. */
	fake_vmm_mmio_write(&f->vm, entry(f, 0, MSIX_ENTRY_DATA), 0x4072, 4);
	assert_true(msix_notify(f->msix, 0));
	assert_int_equal(f->vm.kvm.msi_calls, 1);
	assert_int_equal(irqfd_count(f, route_with_data(f, 0x4072)->gsi), 1);
}

static void test_gsi_exhaustion_fallback(void **state)
{
	struct fixture *f = *state; /* routing table with one MSI GSI */

	program(f, 0, 0xfee00000, 0x4081);
	program(f, 1, 0x00000003fee05000ull, 0x4082);
	vector_mask(f, 0, false);
	vector_mask(f, 1, false);
	set_control(f, MSIX_CONTROL_ENABLE);
	assert_int_equal(irq_routing_nr_msi_routes(f->vm.rt), 1);
	assert_non_null(route_with_data(f, 0x4081));
	assert_true(msix_notify(f->msix, 1));
	assert_int_equal(f->vm.kvm.msi_calls, 1);
	assert_int_equal(f->vm.kvm.last_msi.address_lo, 0xfee05000);
	assert_int_equal(f->vm.kvm.last_msi.address_hi, 3);
	assert_int_equal(f->vm.kvm.last_msi.data, 0x4082);
	assert_true(msix_notify(f->msix, 0));
	assert_int_equal(irqfd_count(f, IRQ_ROUTING_FIRST_MSI_GSI), 1);
	assert_int_equal(f->vm.kvm.msi_calls, 1);
}

static void test_gsi_allocation(void **state)
{
	struct fake_kvm *k = test_calloc(1, sizeof(*k));
	struct irq_routing *rt;

	(void)state;
	assert_null(irq_routing_create(&fake_kvm_routing_ops, k, 0));
	assert_null(irq_routing_create(&fake_kvm_routing_ops, k, IRQ_ROUTING_MAX_MSI_GSIS + 1));
	rt = irq_routing_create(&fake_kvm_routing_ops, k, 3);
	assert_non_null(rt);
	assert_int_equal(irq_routing_alloc_gsi(rt), 24);
	assert_int_equal(irq_routing_alloc_gsi(rt), 25);
	assert_int_equal(irq_routing_alloc_gsi(rt), 26);
	assert_int_equal(irq_routing_alloc_gsi(rt), -ENOSPC);
	assert_int_equal(irq_routing_set_msi(rt, 23, 0xfee00000, 1), -EINVAL); /* an IOAPIC pin */
	assert_int_equal(irq_routing_set_msi(rt, 27, 0xfee00000, 1), -EINVAL);
	assert_int_equal(irq_routing_set_msi(rt, 25, 0xfee00000, 0x25), 0);
	assert_int_equal(irq_routing_set_msi(rt, 26, 0xfee00000, 0x26), 0);
	assert_int_equal(k->nr, IRQ_ROUTING_NR_DEFAULT + 2);
	/* Freeing a routed GSI drops its route from KVM's table; the GSI is reused. */
	assert_int_equal(irq_routing_free_gsi(rt, 25), 0);
	assert_int_equal(k->nr, IRQ_ROUTING_NR_DEFAULT + 1);
	assert_int_equal(k->table[IRQ_ROUTING_NR_DEFAULT].gsi, 26);
	assert_int_equal(irq_routing_set_msi(rt, 25, 0xfee00000, 1), -EINVAL); /* freed */
	assert_int_equal(irq_routing_alloc_gsi(rt), 25);
	assert_int_equal(irq_routing_free_gsi(rt, 1000), 0); /* nonsense is ignored */
	assert_int_equal(irq_routing_irqfd_assign(rt, -1, 24), -EBADF);
	irq_routing_destroy(rt);
	test_free(k);
}

static void test_destroy_releases(void **state)
{
	struct fixture *f = *state;

	program(f, 0, 0xfee00000, 0x4091);
	program(f, 1, 0xfee00000, 0x4092);
	vector_mask(f, 0, false);
	vector_mask(f, 1, false);
	set_control(f, MSIX_CONTROL_ENABLE);
	assert_int_equal(f->vm.kvm.nr_irqfds, 2);
	msix_destroy(f->msix);
	f->msix = NULL;
	assert_int_equal(f->vm.kvm.irqfd_deassigns, 2);
	assert_int_equal(irq_routing_nr_msi_routes(f->vm.rt), 0);
	assert_int_equal(f->vm.kvm.nr, IRQ_ROUTING_NR_DEFAULT);
	/* The device's BAR handler must not be reached after this in real life; unregistering is vm.c's job. */
	f->pdev.ops = NULL;
}

static void test_create_errors(void **state)
{
	struct fixture *f = *state;
	const struct pci_device_info info = { .vendor = 0x1af4, .device = 0x1042 };
	struct pci_device *d = test_malloc(sizeof(*d));

	(void)f;
	pci_device_init(d, &info, NULL, NULL);
	assert_int_equal(pci_device_add_bar(d, 0, 0x1000, PCI_BAR_MEM32, false), 0);
	assert_int_equal(pci_device_add_bar(d, 1, 0x100, PCI_BAR_IO, false), 0);
	errno = 0;
	assert_null(msix_create(d, f->vm.rt, 0, 0, 0, 0x800));
	assert_int_equal(errno, EINVAL);
	assert_null(msix_create(d, f->vm.rt, MSIX_MAX_VECTORS + 1, 0, 0, 0x800));
	assert_null(msix_create(d, f->vm.rt, 8, 1, 0, 0x80));           /* I/O BAR */
	assert_null(msix_create(d, f->vm.rt, 8, 2, 0, 0x80));           /* no BAR */
	assert_null(msix_create(d, f->vm.rt, 8, 0, 4, 0x800));          /* unaligned table */
	assert_null(msix_create(d, f->vm.rt, 8, 0, 0, 0x804));          /* unaligned PBA */
	assert_null(msix_create(d, f->vm.rt, 8, 0, 0, 0x40));           /* overlap */
	assert_null(msix_create(d, f->vm.rt, 8, 0, 0xf88, 0));          /* table past the BAR */
	assert_null(msix_create(d, f->vm.rt, 8, 0, 0, 0x1000));         /* PBA past the BAR */
	assert_null(msix_create(d, f->vm.rt, 256, 0, 0, 0xff8));        /* 4 KiB table + PBA */
	assert_null(msix_create(NULL, f->vm.rt, 8, 0, 0, 0x800));
	assert_null(msix_create(d, NULL, 8, 0, 0, 0x800));
	assert_int_equal(pci_config_read8(d, PCI_CAPABILITY_LIST), 0); /* nothing was added */
	test_free(d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_capability, setup, teardown),
		cmocka_unit_test_setup_teardown(test_table_reset_and_rw, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hostile_table_accesses, setup, teardown),
		cmocka_unit_test_setup_teardown(test_default_routes_kept, setup, teardown),
		cmocka_unit_test_setup_teardown(test_route_and_delivery, setup, teardown),
		cmocka_unit_test_setup_teardown(test_vector_mask_pending, setup, teardown),
		cmocka_unit_test_setup_teardown(test_function_mask, setup, teardown),
		cmocka_unit_test_setup_teardown(test_enable_bit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_route_update_while_unmasked, setup, teardown),
		cmocka_unit_test_setup_teardown(test_route_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_gsi_exhaustion_fallback, setup_one_gsi, teardown),
		cmocka_unit_test(test_gsi_allocation),
		cmocka_unit_test_setup_teardown(test_destroy_releases, setup, teardown),
		cmocka_unit_test_setup_teardown(test_create_errors, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

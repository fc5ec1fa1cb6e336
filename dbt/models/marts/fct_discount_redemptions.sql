-- One row per redeemed discount code of a recovery message: the order that carried it and
-- what the discount cost, in the order's currency, where it can be known from the code and
-- the order (docs/analytics.md, "Smart send time and smart discount"):
--   fixed_amount: the code's value (its currency, else the order's);
--   percentage p: the order's total is after the discount, so the cost is total * p / (100 - p);
--   free_shipping: unknown (the shipping price is not stored), is_cost_known false.

with

coupons as (

    select * from {{ ref('stg_app__coupons') }}
    where is_redeemed and message_id is not null

),

orders as (

    select * from {{ ref('stg_app__orders') }}

),

final as (

    select
        ---------- ids
        coupons.org_id,
        coupons.coupon_id,
        coupons.message_id,
        coupons.cart_id,
        coupons.order_id,

        ---------- strings
        coupons.coupon_type,
        case
            when coupons.coupon_type = 'fixed_amount'
                then coalesce(coupons.currency, orders.currency)
            else orders.currency
        end as currency,

        ---------- numerics
        coupons.coupon_value,
        orders.order_total,
        case
            when coupons.coupon_type = 'fixed_amount' then coupons.coupon_value
            when coupons.coupon_type = 'percentage' and coupons.coupon_value < 100
                then round(
                    orders.order_total * coupons.coupon_value / (100 - coupons.coupon_value), 2
                )
        end as discount_cost,

        ---------- booleans
        coupons.coupon_type = 'fixed_amount'
        or (
            coupons.coupon_type = 'percentage'
            and coupons.coupon_value < 100
            and orders.order_total is not null
        ) as is_cost_known,

        ---------- timestamps
        coupons.redeemed_at

    from coupons
    left join orders
        on coupons.org_id = orders.org_id
        and coupons.order_id = orders.order_id

)

select
    *,
    {{ built_at() }} as built_at
from final
